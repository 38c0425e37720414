"""``scingestor-devserver``: run the development server until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import List, Optional

from .auth import DEFAULT_TOKEN_LIFETIME
from .routing import LOGIN_MODES
from .server import DevServer

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="scingestor-devserver",
        description="SciCat-compatible development server (loopback, SQLite, fault injection; "
                    "admin API under /__devserver__/).")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8881, help="port, 0 = any free (default 8881)")
    parser.add_argument("--db", default=":memory:", help="SQLite file (default in memory)")
    parser.add_argument("--users-login-mode", choices=LOGIN_MODES, default="modern",
                        help="answer of POST Users/login: modern empty 201 (SciCat 4.5, "
                             "default) or legacy {id, ttl}")
    parser.add_argument("--token-lifetime", type=float, default=DEFAULT_TOKEN_LIFETIME,
                        help="token lifetime in seconds (default %(default)s)")
    parser.add_argument("--accept-query-token", action="store_true",
                        help="also accept the access_token query parameter")
    parser.add_argument("--pid-prefix", default="", help="prefix added to posted dataset pids")
    parser.add_argument("--restrict-ingestor", action="store_true",
                        help="the ingestor account reads only datasets of its own group")
    parser.add_argument("--forbid-datablock-delete", action="store_true",
                        help="DELETE of OrigDatablocks and datasets answers 403, as for "
                             "accounts outside DELETE_GROUPS")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="answer every API request this many milliseconds late "
                             "(a real SciCat answers in 30-110 ms)")
    parser.add_argument("-l", "--log", default="warning", help="log level (default warning)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server; print its v3 API URL on stdout; stop on SIGTERM or SIGINT."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = DevServer(host=args.host, port=args.port, db=args.db,
                       users_login_mode=args.users_login_mode,
                       token_lifetime=args.token_lifetime,
                       accept_query_token=args.accept_query_token, pid_prefix=args.pid_prefix,
                       restrict_ingestor=args.restrict_ingestor,
                       datablock_delete_allowed=not args.forbid_datablock_delete)
    server.faults.set_latency(max(0.0, args.latency_ms) / 1000.0)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except OSError as exc:
        print(f"scingestor-devserver: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    print(server.url, flush=True)
    while not stop.wait(3600):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
