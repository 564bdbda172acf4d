"""Transports: stdio (newline-delimited JSON-RPC) and HTTP (POST /mcp)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

from mcp_server.core import Server

logger = logging.getLogger("mcp_server.transport")

MCP_PATH = "/mcp"
PORT_RANGE = range(4242, 5243)


def run_stdio(server: Server) -> None:
    """Newline-delimited JSON-RPC on stdin/stdout until stdin reaches EOF."""
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        raw = stdin.readline()
        if not raw:
            logger.debug("stdin closed")
            return
        if not raw.strip():
            continue
        try:
            message = json.loads(raw.decode("utf-8"))
        except ValueError:
            response: Optional[Dict[str, Any]] = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "Parse error"},
            }
        else:
            response = server.handle(message)
        if response is not None:
            stdout.write(json.dumps(response).encode("utf-8") + b"\n")
            stdout.flush()


def _handler_for(server: Server) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _send_json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            if self.path.split("?", 1)[0] != MCP_PATH:
                self._send_json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                message = json.loads(body.decode("utf-8"))
            except ValueError:
                self._send_json(
                    400, {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": "Parse error"}}
                )
                return
            response = server.handle(message)
            if response is None:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_json(200, response)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._send_json(405, {"error": "use POST " + MCP_PATH})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("http: " + format, *args)

    return Handler


def make_http_server(server: Server, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Bind the first free port of 4242..5242 (or ``PRAXIS_MCP_PORT``)."""
    env_port = os.environ.get("PRAXIS_MCP_PORT")
    ports = [int(env_port)] if env_port else list(PORT_RANGE)
    handler = _handler_for(server)
    last_error: Optional[OSError] = None
    for port in ports:
        try:
            httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            last_error = exc
            continue
        httpd.daemon_threads = True
        return httpd
    raise RuntimeError("no free port for the HTTP transport: %s" % last_error)
