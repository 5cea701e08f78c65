"""Ingestion stages, part two: the connectors with the rate limits on.

Each stage runs a real connector, paced by its own pacer, against a sandbox that
enforces the vendor's limit for real, for a fixed number of requests, on the small
shop at every size (a capped run measures pacing, not volume). It compares what
the connector achieved with the most the limit allows over the same elapsed time
— target ≥ 0.90 — and counts throttled answers (target 0).

- ``ingest.amazon_limits``: the sandbox's token bucket per access token (default
  20 req/s, burst 5: a fast test rate; real searchOrders allows 0.0056 req/s) and
  the connector's :class:`~connectors._pacing.TokenBucketPacer` at the same rate.
  Bound: ``burst + rate × elapsed`` requests.
- ``ingest.shopify_limits``: the sandbox's leaky bucket of query cost and the
  connector's :class:`~connectors._pacing.CostBucketPacer`, paging orders. Bound:
  ``bucket + restore × elapsed`` points, where points consumed are each answer's
  ``actualQueryCost``. Shopify admits a query only when the bucket holds its whole
  *requested* cost (826 for a page of orders, ~180 actually used), so a perfect
  client still ends about ``requested − actual`` short of the bound: the run must
  be long against that for the ratio to mean anything.

Elapsed time runs from the first request sent to the last one sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from bench.harness import Context, Metric, StageResult, stage
from bench.ingest import FORCE_PAGING_DAYS, window_of
from bench.tape import Exchange, RecordingAdapter, mount
from connectors.amazon import ORDERS_PATH, AmazonClient, AmazonSettings, OrdersStream
from connectors.base import Stream, Window
from connectors.shopify import ShopifyClient, ShopifySettings
from connectors.shopify.bulk import BulkRunner
from connectors.shopify.queries import SPECS
from connectors.shopify.streams import ShopifyStream
from hearth.rawzone import RawZone
from sandbox.amazon import AmazonSandbox
from sandbox.shopify import ShopifySandbox

TARGET_LIMIT_RATIO = 0.90


def extract_until(stream: Stream, zone: RawZone, window: Window, enough: Callable[[], bool]) -> int:
    """Land pages of ``window`` into ``zone`` (rereading it if it runs out) until ``enough()``; rows landed."""
    rows = 0
    while not enough():
        with zone.open_load(stream.source, stream.name) as load:
            for page in stream.pages(window):
                load.write(page.records, id_of=stream.record_id, updated_at_of=stream.record_updated_at)
                if enough():
                    break
        rows += load.result.rows
    return rows


def span(exchanges: list[Exchange]) -> float:
    """Seconds from the first request sent to the last one sent: the time the limit admitted them in."""
    return exchanges[-1].sent - exchanges[0].sent if len(exchanges) > 1 else 0.0


def mean_latency(exchanges: list[Exchange]) -> float:
    """Mean seconds from sending a request to having its whole answer (a sequential client's ceiling)."""
    return sum(e.received - e.sent for e in exchanges) / len(exchanges) if exchanges else 0.0


def _ratio_metric(name: str, ratio: float, ratio_of: str) -> Metric:
    return Metric(name, round(ratio, 3), "", TARGET_LIMIT_RATIO, "higher", round(ratio, 3), ratio_of)


@stage("ingest.amazon_limits", shop="small")
def amazon_limits(ctx: Context) -> StageResult:
    """searchOrders paced at the sandbox's own token bucket: achieved requests vs burst + rate × elapsed."""
    rate = float(ctx.size.option("ingest.amazon_rate", 20.0))
    burst = int(ctx.size.option("ingest.amazon_burst", 5))
    wanted = int(ctx.size.option("ingest.amazon_requests", 100))
    recorder = RecordingAdapter()

    def searches() -> list[Exchange]:
        return [e for e in recorder.exchanges if ORDERS_PATH in e.url]  # not the LWA token call

    with AmazonSandbox(ctx.shop, rate_per_second=rate, burst=burst) as server:
        settings = AmazonSettings.from_env(server.env(), rate_per_second=rate, burst=burst)
        stream = OrdersStream(AmazonClient(settings, session=mount(requests.Session(), recorder)))
        zone = RawZone(ctx.work_dir / "raw")
        rows = extract_until(stream, zone, window_of(ctx, None), lambda: len(searches()) >= wanted)
        served, faults = server.requests_served, dict(server.faults_injected)
    calls = searches()
    admitted = sum(e.status == 200 for e in calls)
    throttled = sum(e.status == 429 for e in calls)
    elapsed = span(calls)
    bound = burst + rate * elapsed
    ctx.log(f"amazon: {admitted} searches in {elapsed:.2f} s at {rate:g}/s, burst {burst}: bound {bound:.1f}")
    return StageResult(
        metrics=[
            _ratio_metric("amazon: requests / limit-bound max", admitted / bound, "achieved / (burst + rate × s)"),
            Metric("amazon: 429 answers", throttled, "", 0, "lower"),
            Metric("amazon: requests/s", round(admitted / elapsed, 2) if elapsed else 0.0, "/s", note=f"limit {rate}"),
        ],
        details={
            "rate_per_second": rate,
            "burst": burst,
            "client_pacing_margin": settings.pacing_margin,
            "requests_ok": admitted,
            "elapsed_seconds": round(elapsed, 3),
            # Above 1/rate, the one-at-a-time client cannot keep up whatever its pacer does.
            "mean_request_seconds": round(mean_latency(calls), 4),
            "limit_bound_requests": round(bound, 1),
            "rows_landed": rows,
            "sandbox_requests_served": served,  # the searches plus the LWA token request
            "sandbox_faults_injected": faults,
        },
    )


def _body(exchange: Exchange) -> dict[str, Any]:
    try:
        body = json.loads(exchange.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _throttled(body: dict[str, Any]) -> bool:
    errors = body.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
    )


@stage("ingest.shopify_limits", shop="small")
def shopify_limits(ctx: Context) -> StageResult:
    """Paged orders against the sandbox's cost bucket: points consumed vs bucket + restore × elapsed."""
    bucket = float(ctx.size.option("ingest.shopify_bucket", 2000))
    restore = float(ctx.size.option("ingest.shopify_restore", 100.0))
    wanted = int(ctx.size.option("ingest.shopify_requests", 40))
    recorder = RecordingAdapter()
    server = ShopifySandbox(ctx.shop, bucket_size=bucket, restore_rate=restore)
    with server:
        settings = ShopifySettings.from_env(server.env(), bulk_threshold_days=FORCE_PAGING_DAYS)
        session = mount(requests.Session(), recorder)
        client = ShopifyClient(settings, session=session)  # its CostBucketPacer follows throttleStatus
        stream = ShopifyStream(client, SPECS["orders"], bulk=BulkRunner(client, session=session))
        zone = RawZone(ctx.work_dir / "raw")
        rows = extract_until(stream, zone, window_of(ctx, None), lambda: len(recorder.exchanges) >= wanted)
        served, faults = server.requests_served, dict(server.faults_injected)
    calls = recorder.exchanges
    bodies = [_body(e) for e in calls]
    throttled = sum(map(_throttled, bodies))
    costs = [(b.get("extensions") or {}).get("cost") or {} for b in bodies if not _throttled(b)]
    consumed = sum(c.get("actualQueryCost") or 0 for c in costs)
    requested = sum(c.get("requestedQueryCost") or 0 for c in costs)
    elapsed = span(calls)
    bound = bucket + restore * elapsed
    ctx.log(f"shopify: {consumed:,} points in {elapsed:.2f} s (bucket {bucket:g}, {restore:g}/s): bound {bound:,.0f}")
    return StageResult(
        metrics=[
            _ratio_metric("shopify: points / limit-bound max", consumed / bound, "used / (bucket + restore × s)"),
            Metric("shopify: THROTTLED answers", throttled, "", 0, "lower"),
            Metric("shopify: points/s", round(consumed / elapsed) if elapsed else 0.0, "/s", note=f"restore {restore}"),
        ],
        details={
            "bucket": bucket,
            "restore_rate": restore,
            "requests": len(calls),
            "points_consumed": consumed,
            "requested_cost_per_query": round(requested / len(costs), 1) if costs else None,
            "actual_cost_per_query": round(consumed / len(costs), 1) if costs else None,
            "elapsed_seconds": round(elapsed, 3),
            "mean_request_seconds": round(mean_latency(calls), 4),
            "limit_bound_points": round(bound),
            "rows_landed": rows,
            "sandbox_requests_served": served,
            "sandbox_faults_injected": faults,
        },
    )
