"""A bystander origin for redirect tests: an HTTP server on loopback that records exactly what reaches it
(every header, credentials included, and every body byte) and answers 200 with an empty JSON object, or
whatever ``answer`` (status, content type, body) says: a login page, an internal admin page.

A redirect that leaves the configured origin would deliver the request here; the tests assert that
nothing does.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


class CaptureServer:
    """``answer``: (status, content type, body[, headers]), or a function of the request's path (with its
    query) returning one: a server that makes up every page it is asked for."""

    def __init__(self, answer: Answer | Any = (200, "application/json", b"{}"), delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer = answer
        self.delay = delay  # seconds before each answer: a slow server
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                capture.received.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": self.rfile.read(length) if length else b"",
                    }
                )
                time.sleep(capture.delay)
                answer = capture.answer(self.path) if callable(capture.answer) else capture.answer
                status, content_type, body, *extra = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
