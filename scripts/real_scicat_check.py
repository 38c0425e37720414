#!/usr/bin/env python3
"""End-to-end check of the scingestor tools against a REAL, running SciCat backend.

It does not build or start SciCat; it only talks to one (see
``/work/shared/tools/real-scicat`` and ``docs/real-scicat.md``).

Usage::

    python scripts/real_scicat_check.py --url http://127.0.0.1:3000 --api v3
    python scripts/real_scicat_check.py --url http://127.0.0.1:3000 --api v4 \\
        --delete-allowed no --scenario shrink --workdir /tmp/rc-v4

Run it with the Python of the venv whose scingestor should be checked: the
console scripts ``scicat_dataset_ingestor``, ``scicat_dataset_ingest`` and
``scicat_ingest`` are taken from ``Path(sys.executable).parent``.

What one run does (a fresh beamtime id every run, so reruns do not collide):

1. builds a beamtime with ``BeamtimeFactory`` (NeXus scans, PNG thumbnails,
   detector files), a JSON credential file and a configuration whose
   ``scicat_url`` is ``<proxy>/api/v3`` or ``/api/v4`` (``scicat_users_login_path``
   unset, ``ingestion_delay_time: 0``); a TCP proxy in this script sits between
   the ingestor and SciCat, counts requests (method + path, status) and can
   simulate an outage;
2. starts the daemon, appends plain scans and a measurement, waits until SciCat
   holds them;
3. outage: the proxy refuses connections for ``--outage`` seconds while three
   scans are appended; measures the time from restore until all three exist;
4. re-ingestion: rewrites one scan (new title / sample id, one detector file
   more, or with ``--scenario shrink`` one less), appends ``scan:timestamp`` and
   checks the new scientific metadata and exactly one datablock with the new
   file list; the measurement is extended (grow) or re-ingests a member that
   lost a detector file (shrink);
5. stops the daemon (exit code), runs ``scicat_dataset_ingest`` (exit 0, no
   PATCH/POST/PUT/DELETE, ``updatedAt`` unchanged);
6. posts a Sample with ``scicat_ingest -m Samples`` through a v3 and a v4 URL;
7. prints what SciCat holds per scan, request counts, the resume time and the
   exit codes, and exits 1 when any expectation failed (0 otherwise).

``--delete-allowed no`` states that the backend was started with
``SCICAT_DELETE_GROUPS=`` (the ingestor may not DELETE OrigDatablocks): then no
DELETE may be refused silently: a refusal must show as a failed scan naming
DELETE_GROUPS in the daemon log.

Passwords are never printed: the ingestor's credential file is written for
the daemon only, and request bodies of login calls are not recorded.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from scingestor.testing.factory import BeamtimeFactory

INGESTOR_CREDENTIALS = {"username": "ingestor", "password": "ingestorpw"}
ADMIN_CREDENTIALS = {"username": "admin", "password": "adminpw"}
MEASUREMENT = "calibA"
PLAIN = ["scan_00001", "scan_00002", "scan_00003"]
MEMBERS = ["m_00001", "m_00002"]
OUTAGE_SCANS = ["o_00001", "o_00002", "o_00003"]
CHANGED = "scan_00002"
DETECTORS = 2
ALL_SCANS = PLAIN + MEMBERS + OUTAGE_SCANS + ["m_00003"]


# --------------------------------------------------------------------------- proxy
@dataclass
class Exchange:
    """One HTTP request seen by the proxy (and its response status when parsed)."""

    method: str
    path: str
    when: float
    status: Optional[int] = None
    body: str = ""
    answer: str = ""


class _HttpStream:
    """Incremental parser of HTTP/1.1 messages in one direction of a connection."""

    def __init__(self, requests: bool) -> None:
        self.requests = requests
        self.buffer = b""
        self.remaining = 0  # body bytes still to skip / collect
        self.chunked = False
        self.current: Optional[Exchange] = None
        self.collect = b""

    def feed(self, data: bytes, on_head: Callable[[str, Dict[str, str]], Optional[Exchange]],
             on_done: Callable[[Optional[Exchange], bytes], None]) -> None:
        self.buffer += data
        while True:
            if self.remaining:
                take = self.buffer[: self.remaining]
                if len(self.collect) < 2000:
                    self.collect += take[: 2000 - len(self.collect)]
                self.buffer = self.buffer[len(take):]
                self.remaining -= len(take)
                if self.remaining:
                    return
                if not self.chunked:
                    on_done(self.current, self.collect)
                    self.collect = b""
                continue
            if self.chunked:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                line = self.buffer[:end].split(b";")[0].strip()
                if not line:  # the CRLF after a chunk
                    self.buffer = self.buffer[end + 2:]
                    continue
                size = int(line, 16)
                self.buffer = self.buffer[end + 2:]
                if size == 0:
                    trailer = self.buffer.find(b"\r\n")
                    if trailer < 0:
                        self.buffer = b"0\r\n" + self.buffer
                        return
                    self.buffer = self.buffer[trailer + 2:]
                    self.chunked = False
                    on_done(self.current, self.collect)
                    self.collect = b""
                    continue
                self.remaining = size
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            self.buffer = self.buffer[end + 4:]
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.current = on_head(lines[0], headers)
            length = int(headers.get("content-length", "0") or 0)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            elif length:
                self.remaining = length
            else:
                on_done(self.current, b"")


class CountingProxy:
    """TCP forwarder 127.0.0.1:<port> → upstream that records HTTP requests.

    :meth:`cut` closes the listening socket and every open connection (the
    client sees "connection refused"); :meth:`restore` listens again on the
    same port.
    """

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.exchanges: List[Exchange] = []
        self.lock = threading.Lock()
        self.port = 0
        self.listener: Optional[socket.socket] = None
        self.connections: List[socket.socket] = []
        self.stopping = False
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        pending: List[Exchange] = []
        up = _HttpStream(True)
        down = _HttpStream(False)

        def on_request(line: str, headers: Dict[str, str]) -> Optional[Exchange]:
            parts = line.split(" ")
            if len(parts) < 2:
                return None
            exchange = Exchange(parts[0], parts[1], time.monotonic())
            with self.lock:
                self.exchanges.append(exchange)
            pending.append(exchange)
            return exchange

        def on_request_body(exchange: Optional[Exchange], body: bytes) -> None:
            if exchange is not None and "login" not in exchange.path.lower():
                exchange.body = body[:300].decode("utf-8", "replace")

        def on_response(line: str, headers: Dict[str, str]) -> Optional[Exchange]:
            status = int(line.split(" ")[1]) if len(line.split(" ")) > 1 else 0
            if status == 100:
                return None
            exchange = pending.pop(0) if pending else None
            if exchange is not None:
                exchange.status = status
            return exchange

        def on_response_body(exchange: Optional[Exchange], body: bytes) -> None:
            if exchange is not None and (exchange.status or 0) >= 400:
                exchange.answer = body[:300].decode("utf-8", "replace")

        sockets = [client, server]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        server.sendall(data)
                        try:
                            up.feed(data, on_request, on_request_body)
                        except (ValueError, IndexError):
                            pass
                    else:
                        client.sendall(data)
                        try:
                            down.feed(data, on_response, on_response_body)
                        except (ValueError, IndexError):
                            pass
        except OSError:
            return
        finally:
            for sock in sockets:
                try:
                    sock.close()
                except OSError:
                    pass
            with self.lock:
                self.connections = [s for s in self.connections if s not in sockets]

    def cut(self) -> None:
        """Stop accepting and cut every open connection."""
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        """Listen again on the same port."""
        self._listen()

    def since(self, start: float) -> List[Exchange]:
        with self.lock:
            return [e for e in self.exchanges if e.when >= start]


_ID = re.compile(r"^[0-9a-f]{24}$|^[0-9a-f-]{36}$", re.IGNORECASE)


def normalized(path: str) -> str:
    """``/api/v3/Datasets/99%2Fs/Attachments?x`` → ``/api/v3/Datasets/{pid}/Attachments?filter``."""
    raw, _, query = path.partition("?")
    parts = []
    for segment in raw.split("/"):
        if "%2F" in segment.upper():
            parts.append("{pid}")
        elif _ID.match(segment):
            parts.append("{id}")
        else:
            parts.append(segment)
    return "/".join(parts) + ("?filter" if query else "")


# --------------------------------------------------------------------------- SciCat (admin)
class Admin:
    """Direct (not proxied) admin access to SciCat for checking what it holds."""

    def __init__(self, url: str, api: str) -> None:
        self.base = url.rstrip("/")
        self.api = api
        body = json.dumps(ADMIN_CREDENTIALS).encode()
        request = urllib.request.Request(f"{self.base}/api/v3/auth/login", data=body,
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            self._token = json.load(answer)["access_token"]

    def get(self, path: str, query: Optional[Dict[str, Any]] = None) -> Tuple[int, Any]:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode({k: json.dumps(v) for k, v in query.items()})
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def dataset(self, pid: str) -> Optional[Dict[str, Any]]:
        path = "/api/v4/datasets/" if self.api == "v4" else "/api/v3/Datasets/"
        status, doc = self.get(path + urllib.parse.quote(pid, safe=""))
        return doc if status == 200 and isinstance(doc, dict) and doc else None

    def datasets(self, prefix: str) -> List[Dict[str, Any]]:
        path = "/api/v4/datasets" if self.api == "v4" else "/api/v3/Datasets"
        status, docs = self.get(path, {"filter": {"limit": 10000}})
        if status != 200 or not isinstance(docs, list):
            raise RuntimeError(f"GET {path}: {status} {docs}")
        return [d for d in docs if str(d.get("pid", "")).startswith(prefix)]

    def datablocks(self, pid: str) -> List[Dict[str, Any]]:
        if self.api == "v4":
            status, docs = self.get("/api/v4/origdatablocks",
                                    {"filter": {"where": {"datasetId": pid}}})
        else:
            status, docs = self.get(f"/api/v3/Datasets/{urllib.parse.quote(pid, safe='')}"
                                    "/OrigDatablocks")
        return docs if status == 200 and isinstance(docs, list) else []

    def attachments(self, pid: str) -> List[Dict[str, Any]]:
        if self.api == "v4":
            status, docs = self.get("/api/v4/attachments",
                                    {"filter": {"where": {"relationships.targetId": pid}}})
        else:
            status, docs = self.get(f"/api/v3/Datasets/{urllib.parse.quote(pid, safe='')}"
                                    "/Attachments")
        return docs if status == 200 and isinstance(docs, list) else []

    def sample(self, sample_id: str) -> Optional[Dict[str, Any]]:
        status, doc = self.get("/api/v3/Samples/" + urllib.parse.quote(sample_id, safe=""))
        return doc if status == 200 and isinstance(doc, dict) and doc else None


def files_of(block: Dict[str, Any]) -> List[str]:
    return sorted(str(f.get("path")) for f in block.get("dataFileList") or [])


# --------------------------------------------------------------------------- the check
@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Run:
    options: argparse.Namespace
    beamtime: str
    work: Path
    admin: Admin
    proxy: CountingProxy
    factory: BeamtimeFactory
    checks: List[Check] = field(default_factory=list)
    exit_codes: Dict[str, Optional[int]] = field(default_factory=dict)
    resume: Dict[str, Optional[float]] = field(default_factory=dict)
    daemon: Optional[subprocess.Popen] = None

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        print(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}",
              flush=True)
        return bool(ok)

    def pid(self, scan: str) -> str:
        return f"{self.beamtime}/{scan}"

    def wait(self, what: str, predicate: Callable[[], Any], timeout: Optional[float] = None
             ) -> bool:
        deadline = time.monotonic() + (timeout or self.options.timeout)
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return True
            except (OSError, ValueError, RuntimeError):
                pass
            if self.daemon is not None and self.daemon.poll() is not None:
                return bool(predicate())
            time.sleep(0.1)
        return self.check(f"wait: {what}", False,
                          f"not reached in {timeout or self.options.timeout} s")

    def complete(self, scan: str, blocks: int = 1, attachments: int = 1) -> bool:
        pid = self.pid(scan)
        return (self.admin.dataset(pid) is not None
                and len(self.admin.datablocks(pid)) >= blocks
                and len(self.admin.attachments(pid)) >= attachments)

    def append(self, *lines: str) -> None:
        self.factory.append_list(None, *lines)


def write_scan(run: Run, name: str, detectors: int = DETECTORS, title: str = "demo energy scan",
               sample_id: str = "H2O/42") -> None:
    run.factory.write_nexus_scan(name, png=False, detector_files=detectors, title=title,
                                 sample_id=sample_id)
    # a distinct image per scan, so that a duplicated thumbnail can be told from a sibling's
    run.factory.write_png(name, width=4 + ALL_SCANS.index(name), height=3)


def build(options: argparse.Namespace) -> Run:
    beamtime = f"9{int(time.time()) % 10 ** 7:07d}"
    work = Path(options.workdir or tempfile.mkdtemp(prefix=f"realcheck-{beamtime}-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    factory = BeamtimeFactory(work / beamtime, beamtime_id=beamtime)
    upstream = urllib.parse.urlsplit(options.url)
    proxy = CountingProxy((upstream.hostname or "127.0.0.1", upstream.port or 80))
    admin = Admin(options.url, options.api)
    credentials = work / "ingestor-credentials.json"
    credentials.write_text(json.dumps(INGESTOR_CREDENTIALS))
    credentials.chmod(0o600)
    config = {
        "beamtime_dirs": [factory.beamtime_dir],
        "scicat_url": f"http://127.0.0.1:{proxy.port}/api/{options.api}",
        "ingestor_credential_file": str(credentials),
        "ingestion_delay_time": 0,
        "retry_backoff_initial": 0.5,
        "request_timeout": 10,
    }
    if options.backoff_max is not None:
        config["retry_backoff_max"] = options.backoff_max
    (work / "cfg.yaml").write_text(yaml.safe_dump(config))
    for api in ("v3", "v4"):
        (work / f"cfg-{api}.yaml").write_text(
            yaml.safe_dump(dict(config, scicat_url=f"http://127.0.0.1:{proxy.port}/api/{api}")))
    return Run(options, beamtime, work, admin, proxy, factory)


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_daemon(run: Run) -> None:
    log = open(run.work / "daemon.log", "ab")  # noqa: SIM115 - kept open for the child
    command = [tool("scicat_dataset_ingestor"), "-c", str(run.work / "cfg.yaml"), "-l", "debug",
               "-t"]
    run.daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop_daemon(run: Run) -> None:
    if run.daemon is None:
        return
    if run.daemon.poll() is None:
        run.daemon.send_signal(signal.SIGTERM)
        try:
            run.daemon.wait(30)
        except subprocess.TimeoutExpired:
            run.daemon.kill()
            run.daemon.wait()
    run.exit_codes["scicat_dataset_ingestor (SIGTERM)"] = run.daemon.returncode
    run.daemon = None


def phase_initial(run: Run) -> None:
    print("== 1-2: plain scans and a measurement", flush=True)
    for name in ALL_SCANS:
        write_scan(run, name)
    start_daemon(run)
    run.append(*PLAIN)
    run.append(f"__command__ start {MEASUREMENT}", *MEMBERS, "__command__ stop", MEASUREMENT)
    run.wait("plain scans and members in SciCat",
             lambda: all(run.complete(s) for s in PLAIN + MEMBERS))
    run.wait("measurement in SciCat",
             lambda: run.complete(MEASUREMENT, len(MEMBERS), len(MEMBERS)))


def phase_outage(run: Run) -> None:
    print(f"== 3: outage of {run.options.outage} s", flush=True)
    time.sleep(1.0)
    run.proxy.cut()
    cut_at = time.monotonic()
    for name in OUTAGE_SCANS:
        run.append(name)
        time.sleep(0.5)
    time.sleep(max(0.0, run.options.outage - (time.monotonic() - cut_at)))
    early = [s for s in OUTAGE_SCANS if run.admin.dataset(run.pid(s))]
    through = run.proxy.since(cut_at)
    run.check("nothing passed the proxy during the outage", not early and not through,
              f"datasets {early}, requests {[f'{e.method} {e.path}' for e in through[:5]]}")
    run.proxy.restore()
    restored = time.monotonic()
    print(f"  proxy restored at {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}",
          flush=True)
    first_at: Optional[float] = None
    datasets_at: Optional[float] = None
    complete_at: Optional[float] = None
    deadline = restored + run.options.timeout
    while time.monotonic() < deadline and complete_at is None:
        if first_at is None and any(run.admin.dataset(run.pid(s)) for s in OUTAGE_SCANS):
            first_at = time.monotonic() - restored
        if datasets_at is None and all(run.admin.dataset(run.pid(s)) for s in OUTAGE_SCANS):
            datasets_at = time.monotonic() - restored
            first_at = datasets_at if first_at is None else first_at  # all between two looks
        if datasets_at is not None and all(run.complete(s) for s in OUTAGE_SCANS):
            complete_at = time.monotonic() - restored
        time.sleep(0.05)
    after = run.proxy.since(restored)
    request_at = (after[0].when - restored) if after else None
    run.resume = {"first request": request_at, "first dataset": first_at,
                  "datasets": datasets_at, "complete": complete_at}
    run.check("outage: three datasets within 3 s of restore",
              datasets_at is not None and datasets_at <= 3.0,
              "; ".join(f"{k} {_secs(v)}" for k, v in run.resume.items()))


def _secs(value: Optional[float]) -> str:
    return "never" if value is None else f"{value:.2f} s"


def phase_reingest(run: Run) -> Dict[str, Any]:
    shrink = run.options.scenario == "shrink"
    print(f"== 4: re-ingestion of a changed scan ({run.options.scenario})", flush=True)
    pid = run.pid(CHANGED)
    before = run.admin.datablocks(pid)
    old_files = files_of(before[0]) if before else []
    title = f"changed scan {run.beamtime}"
    sample_id = f"H2O/{run.beamtime}"
    scandir = Path(run.factory.scandir)
    detectors = DETECTORS - 1 if shrink else DETECTORS + 1
    time.sleep(1.1)  # a new mtime for the master file
    write_scan(run, CHANGED, detectors=detectors, title=title, sample_id=sample_id)
    if shrink:
        for extra in sorted((scandir / CHANGED).glob("pilatus_*.cbf"))[detectors:]:
            extra.unlink()
    run.append(f"{CHANGED}:{time.time():.2f}")

    def current() -> bool:
        doc = run.admin.dataset(pid) or {}
        blocks = run.admin.datablocks(pid)
        return (title in json.dumps(doc.get("scientificMetadata", {}))
                and len(blocks) >= 1 and len(files_of(blocks[0])) != len(old_files))

    run.wait(f"{CHANGED}: new metadata and datablock", current)
    time.sleep(1.0)
    doc = run.admin.dataset(pid) or {}
    metadata = json.dumps(doc.get("scientificMetadata", {}))
    run.check(f"{CHANGED}: scientific metadata is the new one",
              title in metadata and "demo energy scan" not in metadata,
              "new title present" if title in metadata else "still the old title")
    blocks = run.admin.datablocks(pid)
    new_files = files_of(blocks[0]) if blocks else []
    added = sorted(set(new_files) - set(old_files))
    removed = sorted(set(old_files) - set(new_files))
    expected = f"{len(old_files)} → {len(old_files) + (-1 if shrink else 1)} files"
    ok = len(blocks) == 1 and len(new_files) == len(old_files) + (-1 if shrink else 1)
    run.check(f"{CHANGED}: exactly one datablock with the new file list", ok,
              f"{len(blocks)} block(s) with {[len(files_of(b)) for b in blocks]} files, expected "
              f"{expected}; added {added} removed {removed}")
    return {"scan_title": title}


def phase_measurement_change(run: Run) -> None:
    pid = run.pid(MEASUREMENT)
    if run.options.scenario == "shrink":
        member = MEMBERS[0]
        print(f"== 4b: measurement member {member} loses a detector file", flush=True)
        own_before = [len(files_of(b)) for b in run.admin.datablocks(run.pid(member))]
        grouped_before = [len(files_of(b)) for b in run.admin.datablocks(pid)
                          if any(member in p for p in files_of(b))]
        time.sleep(1.1)
        write_scan(run, member, detectors=DETECTORS - 1, title=f"shrunk member {run.beamtime}")
        for extra in sorted((Path(run.factory.scandir) / member).glob("pilatus_*.cbf"))[
                DETECTORS - 1:]:
            extra.unlink()
        run.append(f"__command__ start {MEASUREMENT}", f"{member}:{time.time():.2f}",
                   "__command__ stop", f"{MEASUREMENT}:{time.time():.2f}")

        def member_block_shrunk() -> bool:
            own = run.admin.datablocks(run.pid(member))
            grouped = [b for b in run.admin.datablocks(pid)
                       if any(member in p for p in files_of(b))]
            return ([len(files_of(b)) for b in own] == [n - 1 for n in own_before]
                    and [len(files_of(b)) for b in grouped] == [n - 1 for n in grouped_before])

        run.wait(f"{member} and its block in {MEASUREMENT} shrunk", member_block_shrunk)
        expected_members = MEMBERS
    else:
        print("== 4b: measurement extended by m_00003", flush=True)
        run.append(f"__command__ start {MEASUREMENT}", "m_00003", "__command__ stop",
                   f"{MEASUREMENT}:{time.time():.2f}")
        expected_members = MEMBERS + ["m_00003"]
        run.wait(f"{MEASUREMENT} with {len(expected_members)} blocks",
                 lambda: run.complete(MEASUREMENT, 3, 3) and run.complete("m_00003"))
    time.sleep(1.0)
    doc = run.admin.dataset(pid) or {}
    inputs = sorted(doc.get("inputDatasets") or [])
    run.check(f"{MEASUREMENT}: inputDatasets are the members",
              inputs == sorted(run.pid(m) for m in expected_members), str(inputs))
    run.measurement_members = expected_members  # type: ignore[attr-defined]


def phase_end_pass(run: Run) -> None:
    print("== 5: daemon stop, end-of-beamtime pass", flush=True)
    stop_daemon(run)
    run.check("daemon exits 0 on SIGTERM", run.exit_codes.get(
        "scicat_dataset_ingestor (SIGTERM)") == 0,
        str(run.exit_codes.get("scicat_dataset_ingestor (SIGTERM)")))
    before = {d["pid"]: d.get("updatedAt") for d in run.admin.datasets(run.beamtime + "/")}
    time.sleep(1.0)
    start = time.monotonic()
    with open(run.work / "ingest.log", "wb") as log:
        code = subprocess.call([tool("scicat_dataset_ingest"), "-c", str(run.work / "cfg.yaml")],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=300)
    run.exit_codes["scicat_dataset_ingest"] = code
    run.check("scicat_dataset_ingest exits 0", code == 0, f"exit {code}; see {run.work}/ingest.log")
    writes = [e for e in run.proxy.since(start)
              if e.method in ("PATCH", "POST", "PUT", "DELETE") and "login" not in e.path.lower()]
    run.check("end pass: no PATCH/POST/PUT/DELETE", not writes,
              "; ".join(f"{e.method} {e.path} -> {e.status} body {e.body[:200]}"
                        for e in writes[:6]))
    after = {d["pid"]: d.get("updatedAt") for d in run.admin.datasets(run.beamtime + "/")}
    changed = sorted(p for p in after if before.get(p) != after[p])
    run.check("end pass: no dataset updatedAt changed", not changed, ", ".join(changed))
    run.end_pass_requests = Counter(  # type: ignore[attr-defined]
        f"{e.method} {normalized(e.path)}" for e in run.proxy.since(start))


def phase_samples(run: Run) -> None:
    print("== 6: scicat_ingest -m Samples with both API URLs", flush=True)
    for api in ("v3", "v4"):
        sample_id = f"{run.beamtime}-sample-{api}"
        path = run.work / f"sample-{api}.json"
        path.write_text(json.dumps({
            "sampleId": sample_id, "owner": "Prince", "ownerGroup": f"{run.beamtime}-dmgt",
            "accessGroups": [f"{run.beamtime}-clbt"], "description": "real_scicat_check sample",
            "sampleCharacteristics": {"formula": "H2O"}, "isPublished": False}))
        with open(run.work / f"sample-{api}.log", "wb") as log:
            code = subprocess.call([tool("scicat_ingest"), "-m", "Samples", "-c",
                                    str(run.work / f"cfg-{api}.yaml"), str(path)],
                                   stdout=log, stderr=subprocess.STDOUT, timeout=120)
        run.exit_codes[f"scicat_ingest -m Samples ({api} URL)"] = code
        held = run.admin.sample(sample_id)
        run.check(f"Samples via {api} URL: exit 0 and sample stored",
                  code == 0 and held is not None,
                  f"exit {code}, stored: {held is not None}; see {run.work}/sample-{api}.log")


def ingested_failures(run: Run) -> List[str]:
    path = Path(run.factory.ingested_path())
    if not path.exists():
        return ["<no ingested list>"]
    return [line for line in path.read_text().splitlines() if " -1" in f" {line} "]


def final_checks(run: Run) -> List[List[str]]:
    print("== 7: what SciCat holds", flush=True)
    held = run.admin.datasets(run.beamtime + "/")
    by_base: Counter = Counter()
    for doc in held:
        base = re.sub(r"/\d+$", "", doc["pid"][len(run.beamtime) + 1:])
        by_base[base] += 1
    members = getattr(run, "measurement_members", MEMBERS)
    scans = PLAIN + MEMBERS + OUTAGE_SCANS + (["m_00003"] if "m_00003" in members else [])
    rows = [["scan", "datasets", "blocks", "files per block", "attachments", "thumbnails",
             "duplicates"]]
    duplicates_found = []
    for scan in scans + [MEASUREMENT]:
        pid = run.pid(scan)
        blocks = run.admin.datablocks(pid)
        attachments = run.admin.attachments(pid)
        thumbs = [a for a in attachments if str(a.get("thumbnail", "")).startswith("data:image")]
        file_lists = [tuple(files_of(b)) for b in blocks]
        dup_blocks = len(file_lists) - len(set(file_lists))
        images = [str(a.get("thumbnail")) for a in attachments]
        dup_atts = len(images) - len(set(images))
        dup = []
        if by_base[scan] > 1:
            dup.append(f"{by_base[scan]} datasets")
        if dup_blocks:
            dup.append(f"{dup_blocks} same-file blocks")
        if dup_atts:
            dup.append(f"{dup_atts} same attachments")
        duplicates_found += [f"{scan}: {d}" for d in dup]
        rows.append([scan, str(by_base[scan]), str(len(blocks)),
                     ",".join(str(len(f)) for f in file_lists) or "-", str(len(attachments)),
                     str(len(thumbs)), "; ".join(dup) or "none"])
        want_blocks = len(members) if scan == MEASUREMENT else 1
        run.check(f"{scan}: 1 dataset, {want_blocks} block(s), {want_blocks} thumbnail(s)",
                  by_base[scan] == 1 and len(blocks) == want_blocks
                  and len(attachments) == want_blocks and len(thumbs) == want_blocks,
                  f"{by_base[scan]} / {len(blocks)} / {len(attachments)} ({len(thumbs)} images)")
    unknown = sorted(set(by_base) - set(scans) - {MEASUREMENT})
    run.check("no unexpected datasets", not unknown, ", ".join(unknown))
    run.check("no duplicates", not duplicates_found, "; ".join(duplicates_found))
    measurement = run.admin.dataset(run.pid(MEASUREMENT)) or {}
    run.check(f"{MEASUREMENT}: type derived, keyword 'measurement'",
              measurement.get("type") == "derived"
              and "measurement" in (measurement.get("keywords") or []),
              f"type {measurement.get('type')}, keywords {measurement.get('keywords')}")
    failures = ingested_failures(run)
    refused = [e for e in run.proxy.exchanges if e.method == "DELETE" and e.status == 403]
    log = (run.work / "daemon.log").read_text(errors="replace")
    if run.options.delete_allowed == "no" and refused:
        run.check("refused DELETE reported as failed scan naming DELETE_GROUPS",
                  bool(failures) and "DELETE_GROUPS" in log,
                  f"{len(refused)} DELETE 403; failed lines {failures}; DELETE_GROUPS in log: "
                  f"{'DELETE_GROUPS' in log}")
    else:
        run.check("no failed lines in the ingested list", not failures, "; ".join(failures))
    errors = [e for e in run.proxy.exchanges if (e.status or 0) >= 400
              and not (e.status == 404 and e.method == "GET")]
    run.check("no HTTP errors except GET 404", not errors,
              "; ".join(f"{e.method} {e.path} -> {e.status} {e.answer[:160]}" for e in errors[:5]))
    if "password" in log.lower() and INGESTOR_CREDENTIALS["password"] in log:
        run.check("password not in the daemon log", False)
    return rows


def report(run: Run, rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\nSciCat {run.options.url} api {run.options.api}, beamtime {run.beamtime}, "
          f"scenario {run.options.scenario}, delete allowed: {run.options.delete_allowed}")
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))
    by_method = Counter(e.method for e in run.proxy.exchanges)
    print("\nrequests by method: " + ", ".join(f"{m} {n}" for m, n in sorted(by_method.items())))
    by_path = Counter((e.method, normalized(e.path), e.status) for e in run.proxy.exchanges)
    for (method, path, status), count in sorted(by_path.items(), key=lambda i: (i[0][1], i[0][0])):
        print(f"  {count:4d}  {method:6s} {path}  -> {status}")
    end = getattr(run, "end_pass_requests", Counter())
    print("end-of-beamtime pass requests: "
          + (", ".join(f"{k} x{v}" for k, v in sorted(end.items())) or "none"))
    print("outage resume after restore: "
          + "; ".join(f"{k} {_secs(v)}" for k, v in run.resume.items()))
    print("exit codes: " + ", ".join(f"{k} = {v}" for k, v in run.exit_codes.items()))
    failed = [c for c in run.checks if not c.ok]
    print(f"\n{len(run.checks) - len(failed)} of {len(run.checks)} checks passed; "
          f"logs in {run.work}")
    for check in failed:
        print(f"  FAILED: {check.name}: {check.detail}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring for the steps.")
    parser.add_argument("--url", required=True, help="SciCat root, e.g. http://127.0.0.1:3000")
    parser.add_argument("--api", choices=("v3", "v4"), required=True, help="API of scicat_url")
    parser.add_argument("--delete-allowed", choices=("yes", "no"), default="yes",
                        help="whether the backend lets the ingestor DELETE OrigDatablocks "
                             "(no = started with SCICAT_DELETE_GROUPS=)")
    parser.add_argument("--scenario", choices=("grow", "shrink"), default="grow",
                        help="grow: the changed scan gains a detector file and the measurement "
                             "a member; shrink: files are removed (in-place datablock updates)")
    parser.add_argument("--workdir", default=None, help="directory for beamtime, config, logs")
    parser.add_argument("--outage", type=float, default=20.0, help="outage length in seconds")
    parser.add_argument("--timeout", type=float, default=90.0, help="longest wait per step")
    parser.add_argument("--backoff-max", type=float, default=None,
                        help="retry_backoff_max for the config (default: the product default)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    options = build_parser().parse_args(argv)
    run = build(options)
    print(f"beamtime {run.beamtime} in {run.work}; proxy 127.0.0.1:{run.proxy.port} -> "
          f"{options.url}; tools from {Path(sys.executable).parent}", flush=True)
    rows: List[List[str]] = []
    try:
        phase_initial(run)
        phase_outage(run)
        phase_reingest(run)
        phase_measurement_change(run)
        phase_end_pass(run)
        phase_samples(run)
        rows = final_checks(run)
    except Exception as exc:  # noqa: BLE001 - report and fail, never hide
        run.check("script ran to the end", False, f"{type(exc).__name__}: {exc}")
    finally:
        stop_daemon(run)
        run.proxy.cut()
    if rows:
        report(run, rows)
    else:
        report(run, [["scan"] + [""] * 6])
    return 0 if all(c.ok for c in run.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
