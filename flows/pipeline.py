"""The daily pipeline: ingest → transform (dbt + quality gate) → the email sequences.

A failing source fails the run at the end but does not stop the rest: what did land
is modelled. A failed build or gate stops every send and leaves the run Failed with
the gate's explanation. Retrying is safe: ingestion is incremental, the build is
idempotent and the ledger never sends a key twice.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Failed

from flows.ingest import ingest
from flows.sequences import send
from flows.transform import transform

SEQUENCES = ("abandoned_cart", "replenishment", "winback")


@flow(name="daily-pipeline", log_prints=True)
def pipeline(
    sources: list[str] | None = None, sequences: list[str] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Run the whole day once: every configured source, the warehouse, then each sequence.

    Args:
        sources: which sources to ingest (default: every configured one).
        sequences: which sequences to send (default: all three, in priority order).
        dry_run: decide the sends and write who would get what, but send nothing.
    """
    logger = get_run_logger()
    problems: list[str] = []
    ingested = ingest(sources=sources, return_state=True)
    if not ingested.is_completed():
        problems.append(f"ingest: {ingested.message}")
        logger.warning("ingest did not complete (%s); modelling what landed", ingested.message)

    built = transform(return_state=True)
    if not built.is_completed():
        return Failed(message=f"{built.message} — no sequence ran")  # type: ignore[return-value]

    outcomes: list[dict[str, Any]] = []
    for sequence in sequences or SEQUENCES:
        state = send(sequence=sequence, dry_run=dry_run, return_state=True)
        if state.is_completed():
            result = state.result()
            outcomes.append({"sequence": sequence, **result["counts"]})
        else:
            problems.append(f"{sequence}: {state.message}")
            outcomes.append({"sequence": sequence, "error": (state.message or "")[:200]})
    create_table_artifact(key="pipeline-sends", table=outcomes, description="Sends, skips and deferrals per sequence")
    if problems:
        return Failed(message="; ".join(problems))  # type: ignore[return-value]
    return {"sequences": outcomes}
