"""The `send` flow: one email sequence, consent-checked, capped, never sent twice.

It refuses to send when the latest quality gate failed or the warehouse was built
for a past date (backfills never send), pauses for approval in the Prefect UI
when a run would send more than the ceiling, and writes who got what — or, in a
dry run, who would — as a table artifact and a CSV file.
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.input import RunInput

from connectors._errors import HttpError
from connectors.sendgrid import SendGridClient, SendGridSettings, push_templates
from flows.warehouse_turn import warehouse_turn
from hearth.config import ConfigError, Settings
from hearth.ledger import Ledger
from hearth.ledger_export import export_ledger
from hearth.mail_batches import send_planned
from hearth.quality import latest_gate
from hearth.sending import RunSummary, ShopContext, new_run_id, plan
from hearth.sequences import load_sequences
from hearth.suppressions import Suppressions
from hearth.templates import template_payloads
from hearth.warehouse import open_warehouse

TEMPLATE_PUSH_ATTEMPTS = 3


class SendApproval(RunInput):
    """What the marketer answers in the Prefect UI when a run is over the ceiling."""

    approve: bool = False


class SendRefused(RuntimeError):
    """Sending is not safe now; the message says why and what to do."""


def _template_ids(client: SendGridClient, settings: Settings) -> dict[str, str]:
    """Push the repository's templates (idempotent) and return ``sequence/step → template id``.

    A create or update that SendGrid answered with a 5xx may or may not have happened, and
    the client rightly refuses to repeat it blindly. Pushing again settles it: the push lists
    the account first, adopts a template the lost call created and checks the active version.
    Only that unknown outcome (a plain ``HttpError``) is pushed again; refusals are not.
    """
    for attempt in range(1, TEMPLATE_PUSH_ATTEMPTS + 1):
        try:
            ids = push_templates(client, template_payloads(), ids_path=settings.data_dir / "sendgrid_templates.json")
            break
        except HttpError as exc:
            if type(exc) is not HttpError or attempt == TEMPLATE_PUSH_ATTEMPTS:
                raise
            get_run_logger().warning("template push, attempt %d: %s; pushing again", attempt, exc)
    return {name.removeprefix("hearth:"): template_id for name, template_id in ids.items()}


def _check_fit_to_send(settings: Settings, conn: Any) -> None:
    gate = latest_gate(settings)
    if gate is None:
        raise SendRefused("no quality gate has run yet: build the warehouse with `hearth transform` first")
    if not gate.passed:
        raise SendRefused(
            f"the latest quality gate ({gate.checked_at}) failed — sends are blocked until a build passes: "
            + "; ".join(gate.failures[:5])
            + f" (Data Docs: {gate.docs_path})"
        )
    # fetchall, not fetchone: DuckDB 2 keeps a half-read result open and refuses the plan's next query.
    [(as_of,)] = conn.execute("select max(as_of) from customer_rfm").fetchall()
    if as_of is None:
        return
    built_for = as_of.date() if isinstance(as_of, datetime) else as_of
    today = datetime.now(UTC).date()
    # Yesterday's last live build is today's data until the first build after midnight
    # (the 00:00 and 00:15 runs); a backfill of yesterday was checked today, so it is not.
    live_yesterday = built_for == today - timedelta(days=1) and gate.checked_at.astimezone(UTC).date() == built_for
    if built_for < today and not live_yesterday:
        raise SendRefused(
            f"the warehouse was built as of {as_of} (a backfill, or no build since); sequences only send for today"
        )


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        fields = ["customer_key", "email", "sequence", "step", "trigger_id", "decision", "reason", "not_before"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@task(cache_policy=NO_CACHE, task_run_name="plan-{sequence_name}")
def plan_task(sequence_name: str, now: datetime) -> tuple[Any, Any, RunSummary]:
    settings = Settings.from_env()
    sequence = load_sequences()[sequence_name]
    shop = settings.shop
    if shop.secret_key is None:
        raise ConfigError("HEARTH_SECRET_KEY is not set: it signs unsubscribe links (any long random string).")
    context = ShopContext(shop.name, shop.url, shop.address, shop.public_url, shop.secret_key.reveal())
    # The warehouse lock first: a running build makes this plan wait instead of failing on DuckDB's lock.
    with (
        warehouse_turn(settings.data_dir),
        open_warehouse(settings.warehouse_path) as conn,
        Ledger(settings.state_path) as ledger,
        Suppressions(settings.state_path) as suppressions,
    ):
        _check_fit_to_send(settings, conn)
        return plan(conn, sequence, ledger, suppressions, now=now, shop=context, shop_timezone=shop.timezone)


@flow(name="send", log_prints=True)
def send(sequence: str, dry_run: bool = False, approve: bool = False) -> dict[str, Any]:
    """Send the due steps of one sequence (abandoned_cart, replenishment, winback).

    Args:
        sequence: the sequence file's name in ``sequences/``.
        dry_run: decide everything and write who would get what, send nothing.
        approve: allow a run over the send ceiling without pausing for approval.
    """
    logger = get_run_logger()
    settings = Settings.from_env()
    if sequence not in load_sequences():
        raise ValueError(f"unknown sequence {sequence!r}; choose from {sorted(load_sequences())}")
    now = datetime.now(UTC)
    to_send, skips, summary = plan_task(sequence, now)
    summary.dry_run = dry_run
    stamp = f"{now:%Y%m%dT%H%M%S}"
    decisions_file = settings.data_dir / "sequences" / f"{sequence}_{stamp}{'_dry_run' if dry_run else ''}.csv"
    _write_rows(decisions_file, summary.rows)
    if summary.rows:
        create_table_artifact(key=f"{sequence.replace('_', '-')}-decisions", table=summary.rows[:5000],
                              description=f"Who {'would get' if dry_run else 'gets'} what ({len(summary.rows)} rows; "
                              f"all of them in {decisions_file})")  # fmt: skip
    if dry_run:
        logger.info("dry run: %d would be sent, %s skipped, %s deferred — %s",
                    len(to_send), summary.skipped, summary.deferred, decisions_file)  # fmt: skip
        return _result(summary, len(to_send), decisions_file)

    if len(to_send) > settings.shop.send_ceiling and not approve:
        message = (f"{sequence} would send {len(to_send)} emails, over the ceiling of "
                   f"{settings.shop.send_ceiling} (HEARTH_SEND_CEILING); decisions in {decisions_file}")  # fmt: skip
        context = get_run_context()
        if getattr(context.flow_run, "deployment_id", None) is None:
            raise SendRefused(message + ". Rerun with --approve to send anyway.")
        logger.warning("%s — waiting for approval in the Prefect UI", message)
        answer = pause_flow_run(wait_for_input=SendApproval, timeout=24 * 3600)
        if not answer.approve:
            raise SendRefused(message + ". Not approved.")

    env = dict(os.environ)
    client = SendGridClient(SendGridSettings.from_env(env))
    template_ids = _template_ids(client, settings)
    run_id = new_run_id()
    with Ledger(settings.state_path) as ledger:
        ledger.record_skips(run_id, skips)
        send_planned(to_send, ledger=ledger, client=client, template_ids=template_ids, run_id=run_id,
                     summary=summary)  # fmt: skip
    export_ledger(settings)  # sequence_performance reads the ledger from the raw zone
    logger.info("%s: %d sent, %d failed, %d unknown in %d requests; skipped %s; deferred %s",
                sequence, summary.sent, summary.failed, summary.unknown, summary.requests,
                summary.skipped, summary.deferred)  # fmt: skip
    create_table_artifact(
        key=f"{sequence.replace('_', '-')}-summary",
        table=[{"outcome": k, "count": v} for k, v in _result(summary, len(to_send), decisions_file)["counts"].items()],
        description=f"Sends and skips by reason — {sequence}",
    )
    return _result(summary, len(to_send), decisions_file)


def _result(summary: RunSummary, planned: int, decisions_file: Path) -> dict[str, Any]:
    counts = {"planned": planned, "sent": summary.sent, "failed": summary.failed, "unknown": summary.unknown,
              **{f"skipped: {k}": v for k, v in sorted(summary.skipped.items())},
              **{f"deferred: {k}": v for k, v in sorted(summary.deferred.items())}}  # fmt: skip
    return {"sequence": summary.sequence, "dry_run": summary.dry_run, "requests": summary.requests,
            "counts": counts, "decisions_file": str(decisions_file)}  # fmt: skip
