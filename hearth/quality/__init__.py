"""The quality gate: Great Expectations suites on the raw zone and the marts.

A failed gate marks the warehouse unfit for sends; it never stops ingestion.
The sequence flows call :func:`latest_gate` and refuse to send unless it passed.
"""

from hearth.quality.gate import latest_gate, run_gate
from hearth.quality.store import GateResult
from hearth.quality.suites import CONSENT_STATES, GateThresholds

__all__ = ["CONSENT_STATES", "GateResult", "GateThresholds", "latest_gate", "run_gate"]
