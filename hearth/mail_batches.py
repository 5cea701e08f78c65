"""Sending planned mail: batches of up to 1,000 recipients, the ledger written around each request.

:func:`send_planned` takes what :func:`hearth.sending.plan` decided to send. It reserves the keys,
then one background thread sends the batches strictly in order, committing ``sending`` before each
request and the outcome after it, while the calling thread builds the next batch's body: the
request in flight overlaps the preparation of the next, never another request.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.sendgrid import OutgoingMessage
from hearth.ledger import SEND_ID_ARG, Ledger
from hearth.sending import Planned, RunSummary

BATCH_SIZE = 1000  # SendGrid's limit of personalizations per request
MAX_RATE_LIMIT_WAITS = 5


class MailClient(Protocol):
    def mail_bodies(self, messages: list[Any], *, sequence: str, template_id: str,
                    categories: Iterable[str]) -> list[dict[str, Any]]: ...  # fmt: skip

    def send(self, body: dict[str, Any]) -> Any: ...


def send_planned(
    planned: list[Planned],
    *,
    ledger: Ledger,
    client: MailClient,
    template_ids: dict[str, str],
    run_id: str,
    summary: RunSummary,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Reserve, then send step by step in batches of ≤ 1000, writing the ledger around every call.

    One background thread (:class:`_Sender`) takes the batches in order and, for each, commits
    ``sending``, makes the request and records its outcome before it starts on the next: at most one
    request is in flight and the ledger sees exactly what it would without the thread. Meanwhile
    this thread builds the next batch's body, which is what the pipelining wins. An error in the
    background call stops the run and is raised here.
    """
    claimed = {r.send_key for r in ledger.reserve(run_id, [p.candidate for p in planned])}
    mine: dict[str, Planned] = {}
    for p in planned:  # a key listed twice is sent once
        if p.send_key in claimed:
            mine.setdefault(p.send_key, p)
    by_step: dict[tuple[str, str], list[Planned]] = {}
    for p in mine.values():
        by_step.setdefault((p.candidate.sequence, str(p.candidate.step)), []).append(p)
    batch_size = BATCH_SIZE  # read once: tests set the module's value
    with _Sender(ledger, client, run_id, summary, sleep) as sender:
        for (sequence, step), group in by_step.items():
            bodies = functools.partial(_body, client, sequence, step, template_ids[f"{sequence}/{step}"])
            for start in range(0, len(group), batch_size):
                batch = group[start : start + batch_size]
                sender.submit(_Batch(uuid.uuid4().hex, batch, bodies(batch), bodies))


def _body(client: MailClient, sequence: str, step: str, template_id: str, batch: list[Planned]) -> dict[str, Any]:
    """The mail-send body of some of one step's recipients."""
    messages = [
        OutgoingMessage(to_email=p.candidate.email or "", to_name=p.candidate.first_name,
                        dynamic_template_data=p.data, custom_args={SEND_ID_ARG: p.send_key})
        for p in batch
    ]  # fmt: skip
    categories = [f"hearth:{sequence}", f"hearth:{sequence}:{step}"]
    (body,) = client.mail_bodies(messages, sequence=sequence, template_id=template_id, categories=categories)
    return body


@dataclass(frozen=True)
class _Batch:
    """One request's worth: its recipients, and their body built ahead (rebuilt if some may not go)."""

    batch_id: str
    planned: list[Planned]
    body: dict[str, Any]
    rebuild: Callable[[list[Planned]], dict[str, Any]]


class _Sender:
    """Sends batches one at a time on a background thread, with the ledger written around each call.

    ``submit`` hands over a batch (waiting while one is already queued, so at most two bodies exist
    ahead of the request in flight). Leaving the ``with`` block waits until every batch submitted
    is settled, also when the submitting thread leaves with an error (then at most the one queued
    batch still goes; nothing after it is submitted). The first error of the background thread is
    raised by the next ``submit`` or on leaving; batches after it are dropped and stay ``reserved``.
    """

    def __init__(
        self, ledger: Ledger, client: MailClient, run_id: str, summary: RunSummary, sleep: Callable[[float], None]
    ) -> None:
        self.ledger, self.client, self.run_id, self.summary, self.sleep = ledger, client, run_id, summary, sleep
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)  # None: no more batches
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"hearth-send-{run_id}", daemon=True)

    def __enter__(self) -> _Sender:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is None:
            return
        if exc is None:
            raise self._error
        if exc is not self._error:
            exc.add_note(f"the background mail send had failed as well: {self._error!r}")

    def submit(self, batch: _Batch) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)  # never blocks for long: the thread keeps taking batches, even after an error

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drop it: its keys were never marked sending
            try:
                self._send(batch)
            except BaseException as exc:  # handed to the submitting thread, which raises it
                self._error = exc

    def _send(self, batch: _Batch) -> None:
        # Only keys this call moved to `sending` may go out (a reservation can lapse), and only after
        # that is committed; the next batch's `sending` waits until this one's outcome is written.
        keys = self.ledger.mark_sending(batch.batch_id, [p.send_key for p in batch.planned], run_id=self.run_id)
        if not keys:
            return
        body = batch.body
        if len(keys) < len(batch.planned):
            going = set(keys)
            body = batch.rebuild([p for p in batch.planned if p.send_key in going])
        for _attempt in range(MAX_RATE_LIMIT_WAITS + 1):
            self.summary.requests += 1
            result = self.client.send(body)
            if result.status == "failed" and result.retryable:  # 429 / refused: nothing was sent
                self.sleep(min(result.retry_after or 1.0, 60.0))
                continue
            break
        if result.status == "accepted":
            self.ledger.mark_accepted(batch.batch_id, result.message_id)
            self.summary.sent += len(keys)
        elif result.status == "failed":
            self.ledger.mark_failed(keys, result.reason or "failed")
            self.summary.failed += len(keys)
        else:
            self.ledger.mark_unknown(batch.batch_id, result.reason or "unknown outcome")
            self.summary.unknown += len(keys)
