"""The quality gate: Great Expectations suites on the raw zone and the marts.

A failed gate marks the warehouse unfit for sends; it never stops ingestion.
The sequence flows call :func:`latest_gate` and refuse to send unless it passed.

Reading the latest verdict needs only state.sqlite; Great Expectations (seconds to
import) loads when a gate runs: every send process asks for the verdict first.
"""

from typing import Any

from hearth.quality.store import GateResult, latest_gate

__all__ = ["CONSENT_STATES", "GateResult", "GateThresholds", "latest_gate", "run_gate"]


def __getattr__(name: str) -> Any:
    if name == "run_gate":
        from hearth.quality.gate import run_gate

        return run_gate
    if name in {"CONSENT_STATES", "GateThresholds"}:
        from hearth.quality import suites

        return getattr(suites, name)
    raise AttributeError(f"module 'hearth.quality' has no attribute {name!r}")
