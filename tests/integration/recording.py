"""A real `requests` session that keeps what went over the wire, for contract checks."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, list[str]]  # query string and form body
    headers: dict[str, str]
    status: int


class RecordingSession(requests.Session):
    """Sends for real and records each request's final URL, parameters, headers and status."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        sent = urllib.parse.urlsplit(str(response.request.url))
        params = urllib.parse.parse_qs(sent.query, keep_blank_values=True)
        body = response.request.body
        if body:
            text = body.decode() if isinstance(body, bytes) else str(body)
            for key, values in urllib.parse.parse_qs(text, keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
        self.calls.append(Call(str(method), sent.path, params, dict(response.request.headers), response.status_code))
        return response

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]
