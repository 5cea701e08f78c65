"""Progress of long extractions, for whoever is watching.

Tasks report records and finished chunks here; a terminal (the `hearth` CLI)
installs a rich progress bar as the observer, and every run also logs a line per
chunk so a deployment's logs in the Prefect UI tell the same story.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Observer(Protocol):
    def records(self, source: str, stream: str, count: int) -> None: ...

    def chunk(self, source: str, stream: str, done: int, total: int) -> None: ...


class _Registry:
    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._lock = threading.Lock()

    def add(self, observer: Observer) -> Callable[[], None]:
        with self._lock:
            self._observers.append(observer)
        return lambda: self._remove(observer)

    def _remove(self, observer: Observer) -> None:
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def records(self, source: str, stream: str, count: int) -> None:
        for observer in list(self._observers):
            observer.records(source, stream, count)

    def chunk(self, source: str, stream: str, done: int, total: int) -> None:
        for observer in list(self._observers):
            observer.chunk(source, stream, done, total)


observers = _Registry()
