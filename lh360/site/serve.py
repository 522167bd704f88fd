"""`lh360 docs serve`: the site on 127.0.0.1, rebuilt when a page is asked for.

A request for a page (`/`, `*.html`) rebuilds the site first, unless a build finished less than
`min_interval` seconds ago: the stylesheet and script a page pulls in, or a burst of clicks, reuse that build.
One build at a time (a lock); a build that fails answers 500 with its error, and the next request tries again.
Only loopback is bound: the site shows table names, owners and errors, and is no public server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from html import escape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("lh360.site")

HOST = "127.0.0.1"


class SiteServer:
    def __init__(
        self,
        out: Path,
        rebuild: Callable[[], Any],
        *,
        port: int = 8000,
        min_interval: float = 1.0,
        built: bool = False,
    ) -> None:
        """`built`: the caller has just built the site (requests within `min_interval` reuse that build)."""
        self.out = Path(out)
        self.rebuild = rebuild
        self.min_interval = min_interval
        self.builds = 0
        self.last_error: str | None = None
        self._built_at = time.monotonic() if built else float("-inf")
        self._lock = threading.Lock()
        self.out.mkdir(parents=True, exist_ok=True)
        handler = partial(_Handler, directory=str(self.out), site=self)
        self.httpd = ThreadingHTTPServer((HOST, port), handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/"

    def fresh(self) -> str | None:
        """Rebuild unless the last build is recent; the build's error message, or None."""
        with self._lock:
            if time.monotonic() - self._built_at < self.min_interval and self.last_error is None:
                return None
            try:
                self.rebuild()
                self.builds += 1
                self.last_error = None
            except Exception as exc:  # shown on the page; the server goes on
                self.last_error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                log.warning("docs rebuild failed: %s", self.last_error)
            self._built_at = time.monotonic()
            return self.last_error

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, site: SiteServer, **kwargs: Any) -> None:
        self.site = site
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path.endswith("/") or path.endswith(".html"):
            error = self.site.fresh()
            if error is not None:
                self._error_page(error)
                return
        super().do_GET()

    def _error_page(self, error: str) -> None:
        body = (
            '<!doctype html><meta charset="utf-8"><title>lh360 docs: build failed</title>'
            f"<h1>The site could not be built</h1><pre>{escape(error)}</pre><p>Fix it and reload.</p>"
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # every reload shows the newest build
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("docs serve: " + format, *args)
