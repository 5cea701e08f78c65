"""Which runs prefect.yaml's schedules start in one hour, as the `hearth` commands a worker would run.

The run times come from Prefect's own cron evaluation (``CronSchedule.get_dates``, what
the scheduler uses to create runs), over the busiest hour of a day: the hour in which
the most scheduled runs start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect.server.schemas.schedules import CronSchedule

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class ScheduledRun:
    """One run of a deployment: when it starts (minutes into the hour) and the command that runs its flow."""

    minute: float
    deployment: str  # "<flow>/<deployment name>"
    argv: tuple[str, ...]  # arguments of the `hearth` command


@dataclass(frozen=True)
class Deployment:
    name: str  # "<flow>/<deployment name>"
    argv: tuple[str, ...]
    schedules: tuple[CronSchedule, ...]


# The `hearth` command that runs each entrypoint's flow (flows/cli.py), by entrypoint.
_COMMANDS: dict[str, tuple[str, ...]] = {
    "flows/ingest.py:ingest": ("ingest",),
    "flows/transform.py:transform": ("transform",),
    "flows/sequences.py:send": ("send",),
    "flows/pipeline.py:pipeline": ("run",),
    "flows/backfill.py:backfill": ("backfill",),
}
_FLOW_NAMES = {
    "flows/ingest.py:ingest": "ingest",
    "flows/transform.py:transform": "transform",
    "flows/sequences.py:send": "send",
    "flows/pipeline.py:pipeline": "daily-pipeline",
    "flows/backfill.py:backfill": "backfill",
}


def _argv(entry: dict[str, Any]) -> tuple[str, ...]:
    entrypoint = entry["entrypoint"]
    if entrypoint not in _COMMANDS:
        raise ValueError(f"no `hearth` command known for entrypoint {entrypoint!r}; add it to _COMMANDS")
    parameters = entry.get("parameters") or {}
    # `send` takes the sequence as its argument; the other scheduled flows run with their defaults.
    return _COMMANDS[entrypoint] + ((parameters["sequence"],) if "sequence" in parameters else ())


def load_deployments(prefect_yaml: Path) -> list[Deployment]:
    """Every deployment of ``prefect.yaml`` with its `hearth` command and cron schedules."""
    config = yaml.safe_load(prefect_yaml.read_text())
    return [
        Deployment(
            name=f"{_FLOW_NAMES[entry['entrypoint']]}/{entry['name']}",
            argv=_argv(entry),
            schedules=tuple(
                CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC")) for s in entry.get("schedules") or ()
            ),
        )
        for entry in config["deployments"]
    ]


def _starts(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Prefect's own run times of ``schedule`` in ``[start, end)``."""
    dates = asyncio.run(schedule.get_dates(start=start, end=end - timedelta(microseconds=1)))
    return [datetime.fromtimestamp(d.timestamp(), UTC) for d in dates]


def runs_in_hour(deployments: list[Deployment], hour: datetime) -> list[ScheduledRun]:
    """The scheduled runs starting in ``[hour, hour + 1 h)``, in start order."""
    runs = [
        ScheduledRun((start - hour) / timedelta(minutes=1), d.name, d.argv)
        for d in deployments
        for schedule in d.schedules
        for start in _starts(schedule, hour, hour + HOUR)
    ]
    return sorted(runs, key=lambda r: (r.minute, r.deployment))


def busiest_hour(deployments: list[Deployment], day: date) -> datetime:
    """The UTC hour of ``day`` in which the most scheduled runs start (the earliest of equals)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hours = [midnight + i * HOUR for i in range(24)]
    return max(hours, key=lambda h: (len(runs_in_hour(deployments, h)), -h.hour))


def by_name(deployments: list[Deployment], name: str) -> Deployment:
    for deployment in deployments:
        if deployment.name == name:
            return deployment
    raise KeyError(f"prefect.yaml has no deployment {name!r}; it has {[d.name for d in deployments]}")
