"""The suppression list: idempotent, normalised, group-aware, and redactions are forever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.suppressions import Suppressions, normalize_email


@pytest.fixture
def suppressions(tmp_path: Path) -> Iterator[Suppressions]:
    with Suppressions(tmp_path / "state.sqlite") as opened:
        yield opened


def test_addresses_are_normalised() -> None:
    assert normalize_email("  Ann.Smith@Example.COM \n") == "ann.smith@example.com"
    assert normalize_email(None) == ""


def test_suppress_is_idempotent_and_case_blind(suppressions: Suppressions) -> None:
    assert suppressions.suppress(" Ann@Example.com", "unsubscribe", source="test") == 1
    assert suppressions.suppress("ann@example.com", "unsubscribe") == 0
    assert suppressions.suppress(["ANN@example.com", "bob@example.com", "  "], "bounce") == 2  # blank ignored
    assert suppressions.is_suppressed("ann@EXAMPLE.com ")
    assert not suppressions.is_suppressed("carol@example.com")
    rows = suppressions.entries("ann@example.com")
    assert [(r["email"], r["reason"], r["group"]) for r in rows] == [
        ("ann@example.com", "unsubscribe", None),
        ("ann@example.com", "bounce", None),
    ]
    assert rows[0]["source"] == "test"


def test_unknown_reasons_and_misplaced_groups_are_refused(suppressions: Suppressions) -> None:
    with pytest.raises(ValueError, match="not one of"):
        suppressions.suppress("a@example.com", "complained")
    with pytest.raises(ValueError, match="only group_unsubscribe takes a group"):
        suppressions.suppress("a@example.com", "bounce", group=7)
    assert suppressions.entries() == []


def test_a_group_unsubscribe_only_blocks_its_group(suppressions: Suppressions) -> None:
    suppressions.suppress("ann@example.com", "group_unsubscribe", group=42)
    assert suppressions.is_suppressed("ann@example.com", group=42)
    assert suppressions.is_suppressed("ann@example.com", group="42")
    assert not suppressions.is_suppressed("ann@example.com", group=7)
    assert suppressions.is_suppressed("ann@example.com")  # no group named: every suppression counts
    suppressions.suppress("bob@example.com", "spamreport")
    assert suppressions.is_suppressed("bob@example.com", group=7)  # a global one blocks every group


def test_a_group_unsubscribe_without_a_group_suppresses_everything(suppressions: Suppressions) -> None:
    suppressions.suppress("ann@example.com", "group_unsubscribe", group=None)
    assert suppressions.is_suppressed("ann@example.com", group=7)
    assert [r["reason"] for r in suppressions.entries()] == ["unsubscribe"]


def test_suppressed_set_over_a_large_batch(suppressions: Suppressions) -> None:
    emails = [f"user{i}@example.com" for i in range(1_500)]  # more than one IN (...) chunk
    suppressions.suppress(emails[::3], "bounce")
    suppressions.suppress("user1@example.com", "group_unsubscribe", group=5)
    asked = [e.upper() for e in emails] + ["", "stranger@example.com"]
    assert suppressions.suppressed_set(asked) == set(emails[::3]) | {"user1@example.com"}
    assert suppressions.suppressed_set(asked, group=9) == set(emails[::3])


def test_remove_lifts_a_suppression_but_never_a_redaction(suppressions: Suppressions) -> None:
    suppressions.suppress("ann@example.com", "manual")
    assert suppressions.remove("ANN@example.com", "manual") == 1
    assert not suppressions.is_suppressed("ann@example.com")
    suppressions.suppress("ann@example.com", "redacted", source="shopify_gdpr")
    with pytest.raises(ValueError, match="forever"):
        suppressions.remove("ann@example.com", "redacted")
    assert suppressions.is_suppressed("ann@example.com")


def test_webhook_events_suppress_in_order(suppressions: Suppressions) -> None:
    events = [
        {"event": "delivered", "email": "ok@example.com", "timestamp": 1},
        {"event": "bounce", "type": "blocked", "email": "blocked@example.com", "timestamp": 2},
        {"event": "bounce", "type": "bounce", "email": "Gone@example.com", "timestamp": 3},
        {"event": "spamreport", "email": "spam@example.com", "timestamp": 4},
        {"event": "dropped", "email": "dropped@example.com", "timestamp": 5},
        {"event": "unsubscribe", "email": "bye@example.com", "timestamp": 6},
        # out of order on purpose: the resubscribe came after the unsubscribe
        {"event": "group_resubscribe", "email": "back@example.com", "asm_group_id": 3, "timestamp": 9},
        {"event": "group_unsubscribe", "email": "back@example.com", "asm_group_id": 3, "timestamp": 8},
        {"event": "group_unsubscribe", "email": "left@example.com", "asm_group_id": 3, "timestamp": 10},
    ]
    assert suppressions.apply_events(events) == 6
    before = {(r["email"], r["reason"], r["group"]) for r in suppressions.entries()}
    assert before == {
        ("gone@example.com", "bounce", None),
        ("spam@example.com", "spamreport", None),
        ("dropped@example.com", "dropped", None),
        ("bye@example.com", "unsubscribe", None),
        ("left@example.com", "group_unsubscribe", "3"),
    }
    assert {r["source"] for r in suppressions.entries()} == {"sendgrid_webhook"}
    suppressions.apply_events(events)  # a webhook retry changes nothing
    assert {(r["email"], r["reason"], r["group"]) for r in suppressions.entries()} == before


def test_two_handles_on_one_file_see_each_other(tmp_path: Path) -> None:
    with Suppressions(tmp_path / "s.sqlite") as writer, Suppressions(tmp_path / "s.sqlite") as reader:
        writer.suppress("ann@example.com", "unsubscribe")
        assert reader.is_suppressed("ann@example.com")
