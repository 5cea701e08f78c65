"""send_planned with its background sender: the ledger protocol holds batch by batch.

The sends go through a fake mail client over a real ledger file. Inside each request
the fake opens the ledger on its own connection, which sees only committed rows: so
"the batch is `sending` before its request" and "the previous batch is settled and the
next not yet started" are checked where they matter, during the request.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import hearth.mail_batches
from connectors.sendgrid import OutgoingMessage, SendResult, build_mail_bodies
from hearth.ledger import SEND_ID_ARG, Ledger
from hearth.mail_batches import send_planned
from hearth.policy import Candidate
from hearth.sending import Planned, RunSummary

NOW = datetime(2026, 11, 20, 18, tzinfo=UTC)
TEMPLATE_IDS = {"winback/offer": "d-winback-offer"}
RUN = "run-1"


def planned(n: int) -> list[Planned]:
    result = []
    for i in range(n):
        candidate = Candidate(
            customer_key=f"c{i}",
            email=f"c{i}@example.com",
            first_name=f"C{i}",
            timezone="UTC",
            is_marketable=True,
            email_consent="SUBSCRIBED",
            channels=frozenset({"shopify"}),
            sequence="winback",
            step="offer",  # type: ignore[arg-type]
            trigger_id=f"order-{i}",
            trigger_at=NOW - timedelta(days=60),
            due_at=NOW - timedelta(hours=1),
        )
        result.append(Planned(candidate, {"first_name": f"C{i}", "unsubscribe_url": f"https://u.example/{i}"}))
    return result


def keys_of(body: dict[str, Any]) -> list[str]:
    return [p["custom_args"][SEND_ID_ARG] for p in body["personalizations"]]


class FakeClient:
    """Builds real bodies; ``send`` checks the committed ledger, then answers 202 (or what ``answer`` says)."""

    def __init__(self, state: Path, answer: Callable[[int, dict[str, Any]], SendResult] | None = None) -> None:
        self.state, self.answer = state, answer
        self.bodies_built = 0
        self.requests: list[list[str]] = []
        self.statuses_during: list[dict[str, int]] = []
        self.threads: set[str] = set()

    def mail_bodies(self, messages: list[OutgoingMessage], **kwargs: Any) -> list[dict[str, Any]]:
        self.bodies_built += 1
        return build_mail_bodies(messages, from_email="shop@example.com", template_id=kwargs["template_id"],
                                 categories=kwargs["categories"])  # fmt: skip

    def send(self, body: dict[str, Any]) -> SendResult:
        self.threads.add(threading.current_thread().name)
        keys = keys_of(body)
        with Ledger(self.state) as other:  # its own connection: committed rows only
            assert set(other.statuses(keys).values()) == {"sending"}, "a request started before its keys were sending"
            self.statuses_during.append(other.counts_by_status())
        self.requests.append(keys)
        if self.answer is not None:
            return self.answer(len(self.requests), body)
        return SendResult("accepted", message_id=f"msg-{len(self.requests)}", http_status=202)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hearth.mail_batches, "BATCH_SIZE", 3)


@pytest.fixture
def ledger(state: Path) -> Iterator[Ledger]:
    with Ledger(state) as opened:
        yield opened


def run(items: list[Planned], ledger: Ledger, client: Any, **kwargs: Any) -> RunSummary:
    summary = RunSummary("winback", dry_run=False)
    send_planned(items, ledger=ledger, client=client, template_ids=TEMPLATE_IDS, run_id=RUN, summary=summary, **kwargs)
    return summary


def test_each_batch_is_sending_before_its_request_and_settled_before_the_next(state: Path, ledger: Ledger) -> None:
    items = planned(10)
    client = FakeClient(state)

    summary = run(items, ledger, client)

    assert (summary.sent, summary.requests) == (10, math.ceil(10 / 3)) == (10, len(client.requests))
    assert [len(r) for r in client.requests] == [3, 3, 3, 1]
    assert sorted(k for r in client.requests for k in r) == sorted(p.send_key for p in items)
    # During request i: the batches before it accepted, its own keys sending, the later ones still reserved.
    assert client.statuses_during == [
        {k: v for k, v in {"accepted": 3 * i, "sending": len(r), "reserved": 10 - 3 * i - len(r)}.items() if v}
        for i, r in enumerate(client.requests)
    ]
    assert ledger.counts_by_status() == {"accepted": 10}
    assert client.threads == {f"hearth-send-{RUN}"}  # the requests ran on the background thread


def test_an_error_in_the_background_request_is_raised_and_nothing_more_is_sent(state: Path, ledger: Ledger) -> None:
    def answer(call: int, body: dict[str, Any]) -> SendResult:
        if call == 2:
            raise ConnectionResetError("peer reset during the request")
        return SendResult("accepted", message_id="m", http_status=202)

    items, client = planned(12), FakeClient(state, answer)

    with pytest.raises(ConnectionResetError, match="peer reset"):
        run(items, ledger, client)

    assert len(client.requests) == 2  # the run stopped at the failed request
    statuses = ledger.statuses(p.send_key for p in items)
    assert [statuses[k] for k in client.requests[0]] == ["accepted"] * 3
    assert [statuses[k] for k in client.requests[1]] == ["sending"] * 3  # may have gone: recovered as unknown
    assert sorted(statuses.values()).count("reserved") == 6  # never handed to SendGrid


def test_a_body_that_cannot_be_built_stops_the_run_before_its_keys_are_marked(state: Path, ledger: Ledger) -> None:
    items = planned(12)
    items[7].data = {"first_name": "no unsubscribe link"}  # third batch: bulk mail without List-Unsubscribe
    client = FakeClient(state)

    with pytest.raises(ValueError, match="unsubscribe_url"):
        run(items, ledger, client)

    # Every batch handed over before the error is settled; the bad one and the rest never became sending.
    assert [len(r) for r in client.requests] == [3, 3]
    statuses = ledger.statuses(p.send_key for p in items)
    assert [statuses[p.send_key] for p in items] == ["accepted"] * 6 + ["reserved"] * 6


def test_keys_taken_away_meanwhile_are_left_out_of_the_body_built_ahead(state: Path, ledger: Ledger) -> None:
    items = planned(6)
    taken = items[4]  # in the second batch, whose body is built before the first request ends

    def answer(call: int, body: dict[str, Any]) -> SendResult:
        if call == 1:  # the person ordered meanwhile: the same run skips the key before batch 2 starts
            with Ledger(state) as other:
                assert other.record_skips(RUN, [(taken.candidate, "ordered_since_trigger")]) == 1
        return SendResult("accepted", message_id=f"m{call}", http_status=202)

    client = FakeClient(state, answer)
    summary = run(items, ledger, client)

    assert client.requests[1] == [items[3].send_key, items[5].send_key]
    assert client.bodies_built == 3  # two batches built ahead, the second rebuilt without the key
    assert summary.sent == 5 and ledger.get(taken.send_key)["status"] == "skipped"  # type: ignore[index]


def test_a_key_planned_twice_goes_once(state: Path, ledger: Ledger) -> None:
    items = planned(4)
    client = FakeClient(state)
    summary = run([*items, items[1], items[2]], ledger, client)
    assert summary.sent == 4 and sorted(k for r in client.requests for k in r) == sorted(p.send_key for p in items)


def test_rate_limited_requests_wait_and_go_again_on_the_same_thread(state: Path, ledger: Ledger) -> None:
    def answer(call: int, body: dict[str, Any]) -> SendResult:
        if call == 1:
            return SendResult("failed", retry_after=2.0, retryable=True, http_status=429, reason="rate limited")
        return SendResult("accepted", message_id=f"m{call}", http_status=202)

    waits: list[float] = []
    client = FakeClient(state, answer)
    summary = run(planned(5), ledger, client, sleep=waits.append)

    assert waits == [2.0] and summary.requests == 3 and summary.sent == 5
    assert client.requests[0] == client.requests[1]  # the same batch again: nothing was sent the first time
    assert ledger.counts_by_status() == {"accepted": 5}
