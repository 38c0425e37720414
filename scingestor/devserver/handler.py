"""HTTP request handler: recording, fault injection, dispatch to the API."""

from __future__ import annotations

import logging
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Dict
from urllib.parse import parse_qsl, urlsplit

from .api import Response

if TYPE_CHECKING:
    from .server import DevServer

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/__devserver__/"


class DevRequestHandler(BaseHTTPRequestHandler):
    """Answers one connection (HTTP/1.1 keep-alive) for a :class:`DevServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "scingestor-devserver"
    devserver: DevServer  # set on the subclass built by the server

    def setup(self) -> None:
        """Register the connection so that refusing mode can cut it."""
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.devserver.connection_opened(self.connection)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.devserver.connection_closed(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Send the access log to the module logger at DEBUG."""
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802
        """Handle GET."""
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        """Handle POST."""
        self._handle()

    def do_PATCH(self) -> None:  # noqa: N802
        """Handle PATCH."""
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        """Handle PUT."""
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        """Handle DELETE."""
        self._handle()

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        return raw.decode("utf-8", errors="replace")

    def _handle(self) -> None:
        server = self.devserver
        if server.faults.refusing:
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        path = parts.path
        query: Dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self._read_body()
        if path.startswith(ADMIN_PREFIX):
            self._send(server.admin.dispatch(self.command, path[len(ADMIN_PREFIX):], body))
            self.wfile.flush()
            server.run_scheduled()
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        record = server.log.add(self.command, path, query, headers, body)
        decision = server.faults.decide(record.number, self.command, path)
        if decision.latency > 0:
            time.sleep(decision.latency)
        if decision.fail is not None:
            response = Response(decision.fail.status, decision.fail.body)
        else:
            try:
                response = server.api.dispatch(self.command, path, query, headers, body,
                                               parts.query)
            except Exception:
                logger.exception("dev server failed on %s %s", self.command, path)
                response = Response.json(500, {"statusCode": 500,
                                               "message": "Internal server error"})
        record.response = response.body
        record.answered = time.monotonic()
        if decision.drop:
            record.status = response.status
            record.dropped = True
            self.close_connection = True
            return
        record.status = response.status
        self._send(response)

    def _send(self, response: Response) -> None:
        data = response.body.encode("utf-8")
        self.send_response(response.status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
