"""Ingestion stages, part one: each connector's own cost, with the server's time taken out.

``ingest.<source>_cost`` records every HTTP exchange of one extraction against the
sandbox (rate limits off), then replays the same exchanges through
:class:`~bench.tape.ReplayAdapter` — no server at all — while timing
``extract_window`` into a fresh raw zone: request building, parsing, paging and
landing. Target: ≤ 20 µs per record (≥ 50k records/s); best of N replays. One
more replay runs under cProfile and the top functions by own time are reported,
so whoever misses the target sees where the time goes.

The pacing stages (limits on) are in :mod:`bench.ingest_limits`.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.harness import Context, Metric, StageResult, stage
from bench.tape import Exchange, RecordingAdapter, ReplayAdapter, mount
from connectors.amazon import AmazonClient, AmazonSettings, OrdersStream
from connectors.base import Stream, Window
from connectors.facebook import FacebookClient, FacebookSettings, InsightsStream
from connectors.shopify import ShopifyClient, ShopifySettings
from connectors.shopify.bulk import BulkRunner
from connectors.shopify.queries import SPECS
from connectors.shopify.streams import ShopifyStream
from hearth.extract import extract_window
from hearth.rawzone import RawZone
from hearth.state import StateStore
from sandbox._server import SandboxServer
from sandbox.amazon import AmazonSandbox
from sandbox.facebook import FacebookSandbox
from sandbox.shopify import ShopifySandbox

TARGET_US_PER_RECORD = 20.0
PROFILE_TOP = 5
# Longer than any window here: forces Shopify's paged path, the one incremental runs take
# (a bulk operation is one download). Facebook keeps its own async threshold.
FORCE_PAGING_DAYS = 1e9

SleepFn = Callable[[float], None]
StreamFactory = Callable[[dict[str, str], requests.Session, SleepFn], Stream]  # (sandbox env, …)


def no_sleep(seconds: float) -> None:
    """Replays skip every wait (report polls, pacing): waiting is not the connector's work."""


def window_of(ctx: Context, option: str | None) -> Window:
    """``[now - days, now)`` with ``days`` from the size's ``option``; all of the shop's history if None."""
    now = datetime.fromisoformat(ctx.size.now)
    days = ctx.size.option(option) if option else None
    return Window(now - timedelta(days=days if days is not None else 20 * 365), now)


# -- the connector's own cost ------------------------------------------------------------


@dataclass
class CostSetup:
    """One stream to measure: its sandbox (limits off), how to build it on a session, and the window.

    ``make_stream`` gets the sandbox's environment as it was while serving: the replay
    talks to the same (now closed) URL, which the replay adapter answers instead.
    """

    server: SandboxServer
    make_stream: StreamFactory
    window: Window


def _shopify_setup(ctx: Context, *, bulk: bool = False) -> CostSetup:
    """Paged orders over the size's window, or (``bulk``) one bulk operation over all history."""
    server = ShopifySandbox(ctx.shop, rate_limit=False)
    threshold = 0.0 if bulk else FORCE_PAGING_DAYS

    def make(env: dict[str, str], session: requests.Session, sleep: SleepFn) -> Stream:
        settings = ShopifySettings.from_env(env, bulk_threshold_days=threshold, bulk_poll_interval=0.01)
        client = ShopifyClient(settings, session=session, sleep=sleep)
        # The bulk runner fetches results on its own session: give it the recorded one.
        return ShopifyStream(client, SPECS["orders"], bulk=BulkRunner(client, session=session))

    return CostSetup(server, make, window_of(ctx, None if bulk else "ingest.shopify_days"))


def _amazon_setup(ctx: Context) -> CostSetup:
    server = AmazonSandbox(ctx.shop, rate_per_second=None)

    def make(env: dict[str, str], session: requests.Session, sleep: SleepFn) -> Stream:
        settings = AmazonSettings.from_env(env, rate_per_second=1000.0, burst=1000)
        return OrdersStream(AmazonClient(settings, session=session, sleep=sleep))

    return CostSetup(server, make, window_of(ctx, "ingest.amazon_days"))


def _facebook_setup(ctx: Context) -> CostSetup:
    server = FacebookSandbox(ctx.shop)

    def make(env: dict[str, str], session: requests.Session, sleep: SleepFn) -> Stream:
        # slow_above=100: the usage pacer never waits (the limits are off for this measure).
        settings = FacebookSettings.from_env(env, poll_interval=0.01, slow_above=100.0)
        return InsightsStream(FacebookClient(settings, session=session, sleep=sleep))

    return CostSetup(server, make, window_of(ctx, "ingest.facebook_days"))


@dataclass
class Landing:
    rows: int
    wall: float  # seconds
    cpu: float  # process CPU seconds (less disturbed than wall time when the machine is busy)


def _land(stream: Stream, window: Window, root: Path, profiler: cProfile.Profile | None = None) -> Landing:
    """Time ``extract_window`` into a fresh raw zone and state store under ``root``."""
    root.mkdir(parents=True)
    zone = RawZone(root / "raw")
    with StateStore(root / "state.sqlite") as state:
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        try:
            result = extract_window(stream, zone, state, window)
        finally:
            if profiler:
                profiler.disable()
        return Landing(result.rows, time.perf_counter() - wall, time.process_time() - cpu)


def _replay(
    setup: CostSetup, env: dict[str, str], tape: list[Exchange], root: Path, profiler: cProfile.Profile | None = None
) -> Landing:
    adapter = ReplayAdapter(tape)
    stream = setup.make_stream(env, mount(requests.Session(), adapter), no_sleep)
    landing = _land(stream, setup.window, root, profiler)
    if adapter.remaining:
        raise AssertionError(f"the replay left {adapter.remaining} recorded exchanges unasked")
    return landing


def _top(profiler: cProfile.Profile) -> tuple[str, list[dict[str, Any]]]:
    """The profile's top functions by own time: printed (pstats) and as rows."""
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
    top = [
        {
            "function": f"{func[2]} ({Path(func[0]).name}:{func[1]})",
            "own_seconds": round(tt, 4),
            "share": round(tt / total, 3) if total else 0.0,
            "calls": nc,
        }
        for func, (_cc, nc, tt, _ct, _callers) in ranked
    ]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(PROFILE_TOP)
    return text.getvalue(), top


def connector_cost(ctx: Context, name: str, setup: CostSetup) -> StageResult:
    """Record one extraction against the sandbox, then time its replay (best of N) and profile it once."""
    recorder = RecordingAdapter()
    with setup.server:
        env = setup.server.env()  # type: ignore[attr-defined]
        stream = setup.make_stream(env, mount(requests.Session(), recorder), time.sleep)
        live = _land(stream, setup.window, ctx.work_dir / "record")
    tape, rows = recorder.exchanges, live.rows
    ctx.log(f"{name}: recorded {rows:,} records in {len(tape):,} exchanges ({live.wall:.1f} s with the server)")
    if not rows:
        raise RuntimeError(f"{name}: the window {setup.window} holds no records; widen it in bench/run.py")
    replays = [
        _replay(setup, env, tape, ctx.work_dir / f"replay-{n}") for n in range(ctx.size.option("ingest.replays", 3))
    ]
    if any(r.rows != rows for r in replays):
        raise AssertionError(f"{name}: replays landed {[r.rows for r in replays]} records, the recording {rows}")
    profiler = cProfile.Profile()
    _replay(setup, env, tape, ctx.work_dir / "profile", profiler)
    profile_text, top = _top(profiler)
    best = min(r.wall for r in replays)
    wall_us, cpu_us = round(best / rows * 1e6, 1), min(r.cpu for r in replays) / rows * 1e6
    ctx.log(f"{name}: {wall_us:.1f} µs/record wall, {cpu_us:.1f} CPU (best of {len(replays)}); top 5 own time:")
    for row in top:
        ctx.log(f"  {row['own_seconds']:8.4f} s {row['share']:6.1%} {row['calls']:>9,} calls  {row['function']}")
    received = sum(len(e.content) for e in tape)
    return StageResult(
        metrics=[
            Metric.against_target(f"{name}: wall µs per record", wall_us, "µs", TARGET_US_PER_RECORD, "lower"),
            Metric(f"{name}: CPU µs per record", round(cpu_us, 1), "µs", note="the same replays' process CPU time"),
            Metric(f"{name}: records per request", round(rows / len(tape), 1), note="explains per-request overhead"),
        ],
        details={
            "records": rows,
            "exchanges": len(tape),
            "bytes_per_record": round(received / rows),
            "window": [setup.window.start.isoformat(), setup.window.end.isoformat()],
            "live_seconds": round(live.wall, 3),
            "replay_wall_seconds": [round(r.wall, 4) for r in replays],
            "replay_cpu_seconds": [round(r.cpu, 4) for r in replays],
            "cpu_us_per_record": round(cpu_us, 1),
            "profile_top": top,
        },
        text=profile_text,
    )


@stage("ingest.shopify_cost")
def shopify_cost(ctx: Context) -> StageResult:
    """Shopify orders through the paged GraphQL path."""
    return connector_cost(ctx, "shopify orders (paged)", _shopify_setup(ctx))


@stage("ingest.shopify_bulk_cost")
def shopify_bulk_cost(ctx: Context) -> StageResult:
    """Shopify orders through one bulk operation over all history (backfills and first runs)."""
    return connector_cost(ctx, "shopify orders (bulk)", _shopify_setup(ctx, bulk=True))


@stage("ingest.amazon_cost")
def amazon_cost(ctx: Context) -> StageResult:
    """Amazon SP-API orders (searchOrders, 100 a page)."""
    return connector_cost(ctx, "amazon orders", _amazon_setup(ctx))


@stage("ingest.facebook_cost")
def facebook_cost(ctx: Context) -> StageResult:
    """Facebook daily ad-level insights (an async report run over the whole history)."""
    return connector_cost(ctx, "facebook insights", _facebook_setup(ctx))
