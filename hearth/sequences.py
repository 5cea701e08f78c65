"""Email sequences as configuration: `sequences/<name>.yml`, edited without Python.

A sequence names its trigger table (a dbt mart), the column its delays count from,
its steps (delay, template, optional discount and lapse-tier condition), priority,
holdout share and send window. Loading validates everything and names the file
and field at fault, so a typo fails the run before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import yaml

SEQUENCES_DIR = Path(__file__).resolve().parents[1] / "sequences"
EXIT_CONDITIONS = frozenset({"ordered_since_trigger", "checkout_completed", "unsubscribed"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class SequenceConfigError(ValueError):
    """A sequence file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Discount:
    code: str
    percent: float


@dataclass(frozen=True)
class Step:
    name: str
    delay: timedelta
    template: str
    max_lateness: timedelta | None = None  # due longer ago than this → skipped as stale
    discount: Discount | None = None
    when: dict[str, Any] = field(default_factory=dict)  # trigger-row conditions, e.g. lapse_tier


@dataclass(frozen=True)
class Sequence:
    name: str
    description: str
    trigger_table: str
    trigger_time: str
    priority: int
    holdout_share: float
    send_window: tuple[time, time]
    exit_when: frozenset[str]
    steps: tuple[Step, ...]
    path: Path

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"sequence {self.name!r} has no step {name!r}; steps: {[s.name for s in self.steps]}")


def parse_duration(value: Any, where: str) -> timedelta:
    """``90m``, ``1h``, ``1.5d`` → timedelta."""
    match = _DURATION.match(str(value))
    if not match:
        raise SequenceConfigError(f"{where}: {value!r} is not a duration like 30m, 1h or 3d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _clock(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise SequenceConfigError(f"{where}: {value!r} is not a time like 08:00") from None


def _require(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise SequenceConfigError(f"{where}: '{key}' is required")
    return data[key]


def _step(raw: Any, where: str) -> Step:
    if not isinstance(raw, dict):
        raise SequenceConfigError(f"{where}: a step is a mapping with name, delay and template")
    unknown = set(raw) - {"name", "delay", "template", "max_lateness", "discount", "when"}
    if unknown:
        raise SequenceConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    discount = raw.get("discount")
    if discount is not None:
        if not isinstance(discount, dict) or not {"code", "percent"} <= set(discount):
            raise SequenceConfigError(f"{where}.discount: needs code and percent")
        discount = Discount(str(discount["code"]), float(discount["percent"]))
    lateness = raw.get("max_lateness")
    return Step(
        name=str(_require(raw, "name", where)),
        delay=parse_duration(_require(raw, "delay", where), f"{where}.delay"),
        template=str(_require(raw, "template", where)),
        max_lateness=parse_duration(lateness, f"{where}.max_lateness") if lateness is not None else None,
        discount=discount,
        when=dict(raw.get("when") or {}),
    )


def load_sequence(path: Path) -> Sequence:
    where = path.name
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SequenceConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SequenceConfigError(f"{where}: expected a mapping at the top level")
    share = float(data.get("holdout_share", 0.0))
    if not 0.0 <= share < 1.0:
        raise SequenceConfigError(f"{where}: holdout_share {share} must be within [0, 1)")
    exits = frozenset(data.get("exit_when") or ())
    if exits - EXIT_CONDITIONS:
        raise SequenceConfigError(f"{where}: unknown exit_when {sorted(exits - EXIT_CONDITIONS)}; "
                                  f"choose from {sorted(EXIT_CONDITIONS)}")  # fmt: skip
    window = data.get("send_window") or {"start": "00:00", "end": "23:59"}
    raw_steps = _require(data, "steps", where)
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SequenceConfigError(f"{where}: 'steps' must be a non-empty list")
    steps = tuple(_step(raw, f"{where}: steps[{i}]") for i, raw in enumerate(raw_steps))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise SequenceConfigError(f"{where}: step names must be unique, got {names}")
    name = str(_require(data, "name", where))
    if name != path.stem:
        raise SequenceConfigError(f"{where}: name {name!r} must match the file name {path.stem!r}")
    return Sequence(
        name=name,
        description=str(data.get("description", "")),
        trigger_table=str(_require(data, "trigger_table", where)),
        trigger_time=str(_require(data, "trigger_time", where)),
        priority=int(data.get("priority", 100)),
        holdout_share=share,
        send_window=(
            _clock(window.get("start"), f"{where}: send_window.start"),
            _clock(window.get("end"), f"{where}: send_window.end"),
        ),
        exit_when=exits,
        steps=steps,
        path=path,
    )


def load_sequences(directory: Path = SEQUENCES_DIR) -> dict[str, Sequence]:
    """Every `*.yml` in ``directory``, by name."""
    sequences = [load_sequence(path) for path in sorted(directory.glob("*.yml"))]
    return {s.name: s for s in sequences}
