"""Record every HTTP exchange of a ``requests`` session, then replay them with no server at all.

Mounted on a connector's session, :class:`RecordingAdapter` keeps each request
(method, URL, body) and its full answer, with send and receive times.
:class:`ReplayAdapter` answers the same requests, in the same order, from the
recording: timing a replayed extraction measures the connector's own work
(request building, parsing, paging, landing) with the server's time taken out.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers


@dataclass
class Exchange:
    """One request and its answer, as they went over the wire."""

    method: str
    url: str
    body: bytes | None
    status: int
    reason: str
    headers: dict[str, str]
    content: bytes
    sent: float  # perf_counter when the request left
    received: float  # perf_counter when the whole answer was in


def _body(request: requests.PreparedRequest) -> bytes | None:
    body = request.body
    return body.encode("utf-8") if isinstance(body, str) else body  # type: ignore[return-value]


class RecordingAdapter(HTTPAdapter):
    """A real transport that keeps every exchange (the whole body is read, streamed or not)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.exchanges: list[Exchange] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        sent = self.clock()
        response = super().send(request, **kwargs)
        content = response.content  # reads a streamed body too; iter_lines then serves it from memory
        self.exchanges.append(
            Exchange(
                method=str(request.method),
                url=str(request.url),
                body=_body(request),
                status=response.status_code,
                reason=str(response.reason),
                headers=dict(response.headers),
                content=content,
                sent=sent,
                received=self.clock(),
            )
        )
        return response


class ReplayMismatch(AssertionError):
    """The connector asked for something other than what was recorded at this point."""


class ReplayAdapter(BaseAdapter):
    """Answers requests from a recording, in order; any deviation raises :class:`ReplayMismatch`."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        super().__init__()
        self.exchanges = exchanges
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self.exchanges) - self.position

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.position >= len(self.exchanges):
            raise ReplayMismatch(f"request {request.method} {request.url} after the recording ended")
        recorded = self.exchanges[self.position]
        if (request.method, request.url, _body(request)) != (recorded.method, recorded.url, recorded.body):
            raise ReplayMismatch(
                f"exchange {self.position}: got {request.method} {request.url}, recorded {recorded.method} "
                f"{recorded.url} (or the bodies differ): the extraction is not deterministic"
            )
        self.position += 1
        return _response(request, recorded, self)

    def close(self) -> None:
        pass


def _response(request: requests.PreparedRequest, recorded: Exchange, adapter: BaseAdapter) -> requests.Response:
    """What ``HTTPAdapter.build_response`` makes, from the recording instead of a socket."""
    response = requests.Response()
    response.status_code = recorded.status
    response.reason = recorded.reason
    response.headers = CaseInsensitiveDict(recorded.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = io.BytesIO(recorded.content)
    # A body already read in full, as after ``.content``: iter_lines/iter_content serve it from memory.
    response._content = recorded.content
    response._content_consumed = True  # type: ignore[attr-defined]
    response.url = str(request.url)
    response.request = request
    response.connection = adapter  # type: ignore[assignment]
    return response


def mount(session: requests.Session, adapter: BaseAdapter) -> requests.Session:
    """Route every http(s) URL of ``session`` through ``adapter``."""
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return session
