"""Run a command under the key restrictions of scicat-dataset-ingestor.service, without systemd.

systemd is not PID 1 in the test environment, so ``systemd-run`` cannot apply the unit's
sandbox. This script rebuilds its essential parts with the same kernel mechanisms:

``readonly [--rw DIR ...] [--expose DIR ...] -- COMMAND...`` (as root)
    a private mount namespace in which every mount except ``/proc``, ``/sys`` and ``/dev``
    is read-only and only the ``--rw`` directories are writable (``ProtectSystem=strict``,
    ``ProtectHome=read-only``, ``ReadWritePaths=``/``StateDirectory=``); ``/tmp`` is
    read-only too, stricter than ``PrivateTmp=yes``. ``--expose`` makes a directory
    (the Python installation of the tests) reachable although an ancestor such as
    ``/root`` is not searchable by others. Then it runs COMMAND.

``seccomp -- COMMAND...`` (any user; sets ``no_new_privs``)
    the seccomp filters that systemd installs for ``MemoryDenyWriteExecute=yes`` (no
    ``mmap`` that is writable and executable, no ``mprotect``/``pkey_mprotect`` adding
    ``PROT_EXEC``, no ``shmat`` with ``SHM_EXEC``: EPERM) and for
    ``RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`` (``socket``/``socketpair`` of
    any other family: EAFNOSUPPORT), then executes COMMAND.

Privileges are dropped between the two with util-linux's ``setpriv`` (``User=``,
``NoNewPrivileges=``, ``CapabilityBoundingSet=``, ``AmbientCapabilities=``), see
``tests/test_systemd_unit.py``. x86_64 and aarch64 only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import sys
from typing import List, Sequence, Tuple

# -------------------------------------------------------------------- mounts
CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
_KEEP = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
_API_FS = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target: str, flags: int) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), None,
                       ctypes.c_ulong(flags), None), f"mount {target}")


def _mounts() -> List[Tuple[str, str]]:
    """(mount point, per-mount options) of /proc/self/mountinfo, parents first."""
    result = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            result.append((point, fields[5]))
    return result


def _below(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _expose(path: str) -> None:
    """Make ``path`` reachable for every user although an ancestor is not (e.g. /root).

    The first ancestor without search permission for others is covered with a tmpfs
    (mode 0755) that holds only the way down to ``path``, and ``path`` is bound into it.
    """
    path = os.path.realpath(path)
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        if os.stat(ancestor).st_mode & 0o001 == 0:
            break
    else:
        return
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY)
    try:
        _check(_libc.mount(b"tmpfs", ancestor.encode(), b"tmpfs", ctypes.c_ulong(0),
                           b"mode=0755"), f"mount tmpfs {ancestor}")
        os.makedirs(path, mode=0o755)
        _mount(f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC)
    finally:
        os.close(fd)


def readonly(writable: Sequence[str], exposed: Sequence[str] = ()) -> None:
    """Make this process's view of the file system read-only except ``writable``.

    ``exposed`` directories are made reachable for all users first (:func:`_expose`).
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", MS_REC | MS_PRIVATE)
    for path in exposed:
        _expose(path)
    writable = [os.path.realpath(path) for path in writable]
    for path in writable:
        _mount(path, path, MS_BIND | MS_REC)
    for point, options in _mounts():
        if _below(point, _API_FS) or _below(point, writable):
            continue
        keep = 0
        for option in options.split(","):
            keep |= _KEEP.get(option, 0)
        try:
            _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
        except OSError as exc:
            if point == "/":
                raise
            print(f"systemd_sandbox: cannot make {point} read-only: {exc}", file=sys.stderr)


# -------------------------------------------------------------------- seccomp
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10

# audit arch, mmap, mprotect, pkey_mprotect, shmat, socket, socketpair
_ARCH = {
    "x86_64": (0xC000003E, 9, 10, 329, 30, 41, 53),
    "aarch64": (0xC00000B7, 222, 226, 288, 196, 198, 199),
}

_LD_W_ABS = 0x20     # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15          # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x45         # BPF_JMP | BPF_JSET | BPF_K
_AND = 0x54          # BPF_ALU | BPF_AND | BPF_K
_RET = 0x06          # BPF_RET | BPF_K
_NR, _AUDIT_ARCH, _ARG0, _ARG2 = 0, 4, 16, 32   # offsets in struct seccomp_data (LE)


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Insn))]


def _assemble(lines: Sequence[tuple]) -> List[Tuple[int, int, int, int]]:
    """Resolve ``("label:", name)`` entries and jump targets given as label names."""
    labels, code = {}, []
    for line in lines:
        if line[0] == "label":
            labels[line[1]] = len(code)
        else:
            code.append(line)
    result = []
    for index, (op, jt, jf, k) in enumerate(code):
        jt = labels[jt] - index - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - index - 1 if isinstance(jf, str) else jf
        result.append((op, jt, jf, k))
    return result


def _program() -> List[Tuple[int, int, int, int]]:
    arch, mmap, mprotect, pkey_mprotect, shmat, socket, socketpair = _ARCH[platform.machine()]
    return _assemble([
        (_LD_W_ABS, 0, 0, _AUDIT_ARCH),
        (_JEQ, 0, "allow", arch),                # another ABI: not judged here
        (_LD_W_ABS, 0, 0, _NR),
        (_JEQ, "mmap", 0, mmap),
        (_JEQ, "mprotect", 0, mprotect),
        (_JEQ, "mprotect", 0, pkey_mprotect),
        (_JEQ, "shmat", 0, shmat),
        (_JEQ, "socket", 0, socket),
        (_JEQ, "socket", "allow", socketpair),
        ("label", "mmap"),                       # writable and executable together
        (_LD_W_ABS, 0, 0, _ARG2),
        (_AND, 0, 0, PROT_WRITE | PROT_EXEC),
        (_JEQ, "eperm", "allow", PROT_WRITE | PROT_EXEC),
        ("label", "mprotect"),                   # making anything executable
        (_LD_W_ABS, 0, 0, _ARG2),
        (_JSET, "eperm", "allow", PROT_EXEC),
        ("label", "shmat"),
        (_LD_W_ABS, 0, 0, _ARG2),
        (_JSET, "eperm", "allow", SHM_EXEC),
        ("label", "socket"),                     # the address family
        (_LD_W_ABS, 0, 0, _ARG0),
        (_JEQ, "allow", 0, AF_UNIX),
        (_JEQ, "allow", 0, AF_INET),
        (_JEQ, "allow", "eafnosupport", AF_INET6),
        ("label", "allow"),
        (_RET, 0, 0, SECCOMP_RET_ALLOW),
        ("label", "eperm"),
        (_RET, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        ("label", "eafnosupport"),
        (_RET, 0, 0, SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT),
    ])


def seccomp() -> None:
    """Install the MemoryDenyWriteExecute and RestrictAddressFamilies filters."""
    code = _program()
    insns = (_Insn * len(code))(*[_Insn(*insn) for insn in code])
    prog = _Prog(len(code), insns)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def main(argv: Sequence[str]) -> int:
    if "--" not in argv or not argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = list(argv).index("--")
    mode, options, command = argv[0], list(argv[1:split]), list(argv[split + 1:])
    if mode == "readonly":
        writable = [options[i + 1] for i, item in enumerate(options) if item == "--rw"]
        exposed = [options[i + 1] for i, item in enumerate(options) if item == "--expose"]
        readonly(writable, exposed)
    elif mode == "seccomp":
        seccomp()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    os.execvp(command[0], command)
    return 127   # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
