"""The webhook receiver: a small Starlette app over :class:`hearth.webhooks.WebhookProcessor`.

Routes: ``POST /webhooks/sendgrid``, ``POST /webhooks/shopify``, ``GET|POST /unsubscribe``, ``GET /healthz``.
The app only moves bytes: verification, landing and suppression live in
``hearth/webhooks.py``, which runs in Starlette's thread pool (blocking file and
SQLite I/O).

``hearth webhooks serve`` runs it with uvicorn; :class:`WebhookServer` runs it in a
background thread (tests, demos).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from hearth.config import Settings
from hearth.webhooks import MAX_BODY_BYTES, Reply, WebhookProcessor

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8710


def create_app(processor: WebhookProcessor) -> Starlette:
    """The ASGI app answering with ``processor``."""

    def endpoint(handle: Callable[[bytes, Mapping[str, str]], Reply]) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def receive(request: Request) -> JSONResponse:
            try:  # refuse an announced oversize body before reading it; the processor re-checks the size
                too_big = int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES
            except ValueError:
                too_big = False
            if too_big:
                return JSONResponse({"error": "body too large"}, status_code=413)
            # The processor does blocking file and SQLite work: keep it off the event loop.
            reply = await run_in_threadpool(handle, await request.body(), dict(request.headers))
            return JSONResponse(reply.body, status_code=reply.status)

        return receive

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "sendgrid": processor.sendgrid_verifier is not None,
                "shopify": processor.shopify_secret is not None,
            }
        )

    async def unsubscribe(request: Request) -> Response:
        token = request.query_params.get("token", "")
        reply = await run_in_threadpool(processor.unsubscribe, token)
        if request.method == "POST":  # List-Unsubscribe-Post one-click: mail clients read the status only
            return JSONResponse(reply.body, status_code=reply.status)
        text = ("You are unsubscribed and will get no more marketing email from us."
                if reply.status == 200 else "This unsubscribe link is not valid.")  # fmt: skip
        return HTMLResponse(f"<!doctype html><title>Unsubscribe</title><p>{text}</p>", status_code=reply.status)

    return Starlette(
        routes=[
            Route("/unsubscribe", unsubscribe, methods=["GET", "POST"]),
            Route("/webhooks/sendgrid", endpoint(processor.sendgrid), methods=["POST"]),
            Route("/webhooks/shopify", endpoint(processor.shopify), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the webhooks over ``settings`` in the foreground until interrupted."""
    # hearth.webhooks logs what landed and what was rejected; show it beside uvicorn's access log.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(WebhookProcessor.from_settings(settings)), host=host, port=port, log_level="info")


class WebhookServer:
    """The app on a loopback port in a background thread: ``with WebhookServer(processor) as s: s.url``.

    Args:
        processor: what answers the requests.
        host, port: where to listen (port 0 picks a free one).
    """

    def __init__(self, processor: WebhookProcessor, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.processor = processor
        self.host, self.port = host, port
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(processor), log_level="warning", lifespan="off", access_log=False)
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        """Bind, start serving, and return the base URL once the server accepts connections."""
        # Binding here (not in uvicorn) makes port 0 usable: the chosen port is known at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="hearth-webhooks", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"webhook server on {self.url} did not start")
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> WebhookServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
