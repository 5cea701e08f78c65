"""Async insights report runs: ``POST /act_{id}/insights`` → poll ``/{run_id}`` → page ``/{run_id}/insights``.

Large insights ranges time out synchronously; Meta's answer is a report run
(an ``AdReportRun`` node). It is polled with a doubling interval until its
``async_status`` is ``Job Completed`` and ``async_percent_completion`` 100;
``Job Failed`` and ``Job Skipped`` end it with :class:`ReportRunFailed`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from connectors._http import HttpError, MalformedResponse
from connectors.facebook.client import FacebookClient

JOB_COMPLETED = "Job Completed"
JOB_FAILED = "Job Failed"
JOB_SKIPPED = "Job Skipped"
STATUS_FIELDS = "async_status,async_percent_completion,error_code,error_message"


class ReportRunFailed(HttpError):
    """A report run ended without a result (failed, skipped or timed out)."""


def start_report(client: FacebookClient, params: Mapping[str, Any]) -> str:
    """Start a report run with the insights ``params``; returns its id."""
    path = f"{client.settings.account}/insights"
    body = client.post_json(path, params)
    run_id = body.get("report_run_id")
    if not isinstance(run_id, str | int) or not str(run_id):
        raise MalformedResponse(client.http.url_for(path), 200, f"no report_run_id in {sorted(body)}")
    return str(run_id)


def wait_for_report(client: FacebookClient, run_id: str, *, describe: str = "") -> dict[str, Any]:
    """Poll until the run completes; returns its last status object.

    Raises:
        ReportRunFailed: ``Job Failed`` / ``Job Skipped``, or still unfinished after ``poll_timeout``.
    """
    settings = client.settings
    url = client.http.url_for(run_id)
    deadline = client.clock() + settings.poll_timeout
    interval = settings.poll_interval
    what = f"Facebook insights report run {run_id}{' (' + describe + ')' if describe else ''}"
    while True:
        status = client.get_json(run_id, {"fields": STATUS_FIELDS})
        state = status.get("async_status")
        if state == JOB_COMPLETED and status.get("async_percent_completion", 100) == 100:
            return status
        if state in (JOB_FAILED, JOB_SKIPPED):
            why = f"error {status['error_code']}: {status.get('error_message', '')}" if "error_code" in status else ""
            raise ReportRunFailed(
                f"{what} ended with async_status {state!r}{' (' + why + ')' if why else ''}. Meta does not "
                "retry report runs: rerun the extraction; if it keeps failing, narrow the range "
                "(async_threshold_days and smaller backfill chunks).",
                url=url,
            )
        if client.clock() >= deadline:
            raise ReportRunFailed(
                f"{what} is still {state!r} ({status.get('async_percent_completion', '?')}%) after "
                f"{settings.poll_timeout:.0f}s; rerun later or raise poll_timeout.",
                url=url,
            )
        client.sleep(interval)
        interval = min(settings.poll_max_interval, interval * 2)


def report_pages(client: FacebookClient, run_id: str) -> Iterator[tuple[list[Any], str]]:
    """Every page of a completed run's rows."""
    return client.pages(f"{run_id}/insights", {"limit": str(client.settings.page_size)})
