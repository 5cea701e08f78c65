"""A small threaded HTTP server that every sandbox stand-in builds on.

Each vendor sandbox subclasses :class:`SandboxServer`, implements :meth:`handle`
(routing by method and path) and :meth:`throttled` (the vendor's own throttle
response), and gets for free: loopback serving in a background thread, keep-alive,
and deterministic fault injection (:class:`Faults`) applied before ``handle`` runs.

Faults are drawn from one seeded generator in request order, so a single-threaded
client sees the same faults on every run with the same seed.
"""

from __future__ import annotations

import abc
import json
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("error", "throttle", "timeout", "malformed")


@dataclass
class Faults:
    """Fault knobs of one sandbox server. Rates are shares of requests in [0, 1].

    - ``error_rate``: answer 500/502/503 with the vendor's error shape.
    - ``throttle_rate``: answer with the vendor's throttle response (429, THROTTLED …),
      on top of any rate limit the server enforces for real.
    - ``timeout_rate``: stall ``stall_seconds`` and then drop the connection unanswered.
    - ``malformed_rate``: answer 200 with a body cut in half (invalid JSON).
    - ``latency_ms``: added to every request.
    """

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    latency_ms: float = 0.0
    stall_seconds: float = 2.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate", "timeout_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault knob {name}={value} must be within [0, 1]")
        if self.error_rate + self.throttle_rate + self.timeout_rate + self.malformed_rate > 1.0:
            raise ValueError("fault rates add up to more than 1")
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        """The fault for the next request (one of :data:`FAULT_KINDS`), or None."""
        with self._lock:
            roll = self._rng.random()
        for kind, rate in (
            ("error", self.error_rate),
            ("throttle", self.throttle_rate),
            ("timeout", self.timeout_rate),
            ("malformed", self.malformed_rate),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None

    @classmethod
    def from_spec(cls, spec: str) -> Faults:
        """Parse ``"error_rate=0.05,throttle_rate=0.05,seed=7"`` (the CLI form)."""
        kwargs: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key not in cls.__dataclass_fields__ or key.startswith("_"):
                raise ValueError(f"unknown fault knob {key!r} in {spec!r}")
            kwargs[key] = int(value) if key == "seed" else float(value)
        return cls(**kwargs)


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]  # parsed query string (repeated keys keep every value)
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter (or of a form field in a form-encoded body)."""
        values = self.query.get(name) or self.form().get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return {}
        return urllib.parse.parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError with a readable message."""
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from exc


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": content_type})


class _DropConnection(Exception):
    """Raised to close the socket without answering (a simulated timeout)."""


class SandboxServer(abc.ABC):
    """Base class of the vendor stand-ins. Subclasses implement ``handle`` and ``throttled``."""

    name = "sandbox"

    def __init__(self, *, faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.requests_served = 0
        self.faults_injected: dict[str, int] = {kind: 0 for kind in FAULT_KINDS}
        self._stats_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses provide -------------------------------------------------
    @abc.abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer one request (faults were already applied)."""

    def throttled(self, request: Request) -> Response:
        """The vendor's answer to a request over its rate limit."""
        return Response.json({"error": "rate limited"}, 429, {"Retry-After": "1"})

    def server_error(self, request: Request) -> Response:
        """The vendor's answer to an internal error."""
        return Response.json({"error": "internal error"}, 503)

    # -- serving -----------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{self.name} sandbox is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL (``http://127.0.0.1:PORT``)."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        # A short poll interval makes stop() quick, which tests that restart servers feel.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.name}-sandbox", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()  # serve_forever notices within its poll interval
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, request: Request) -> Response:
        """Apply latency and faults, then the vendor logic."""
        with self._stats_lock:
            self.requests_served += 1
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        fault = None if request.path.startswith("/_sandbox") else self.faults.draw()
        if fault:
            with self._stats_lock:
                self.faults_injected[fault] += 1
        if fault == "error":
            return self.server_error(request)
        if fault == "throttle":
            return self.throttled(request)
        if fault == "timeout":
            time.sleep(self.faults.stall_seconds)
            raise _DropConnection
        response = self.handle(request)
        if fault == "malformed" and response.status == 200:
            response.body = response.body[: max(1, len(response.body) // 2)]
        return response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a keep-alive client waits ~40 ms per answer for delayed ACKs.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def _serve(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(parsed.path),
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        try:
            response = self.server.sandbox.dispatch(request)
        except _DropConnection:
            self.close_connection = True
            return
        except Exception as exc:  # a sandbox bug must not look like a hang to the client
            response = Response.json({"error": f"sandbox failure: {type(exc).__name__}: {exc}"}, 500)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the servers run inside tests and the CLI
