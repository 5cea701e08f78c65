"""Sequence stages: one sequence step to many recipients, the way the ``send`` flow runs it.

``sequences.step_100k`` builds N synthetic abandoned-cart candidates (quick: 5,000;
full: 100,000) and runs the whole step against the SendGrid sandbox: the ledger's
look-ups (``recover``, ``statuses``, ``recent_sends``), the policy
(:func:`hearth.policy.decide`), the template data (:func:`hearth.sending.template_data`,
which validates through :func:`hearth.templates.dynamic_template_data`), then
:func:`hearth.mail_batches.send_planned` (reserve, ``sending``, one mail-send body per
1,000, ``accepted``). The warehouse is bypassed: candidates carry a payload shaped
like a ``trigger_abandoned_checkouts`` row.

The candidates are all sendable at the fixed :data:`NOW`: subscribed, valid and
distinct addresses and customers, due an hour ago (step ``reminder``), in local
timezones where 18:00 UTC is inside the 08:00–21:00 send window. The sequence is
the real ``sequences/abandoned_cart.yml`` with ``holdout_share`` set to 0, so that
every candidate is sent and the request count must equal ⌈N/1000⌉; the holdout hash
is still computed for every candidate (the policy does not short-cut a zero share).

The sandbox runs in a child process with ``webhook_url=None`` (no events): the step
owns this process's interpreter, as it would in production where SendGrid is remote.
The ledger and client are wrapped in timers. The breakdown is of this (main) thread's
wall time: ledger look-ups, policy, template data, ``reserve``, then the *send loop*,
where a background thread makes the requests one after another (``sending`` → HTTP →
``accepted``) while this thread builds the next body. For the send loop it also shows
how busy that sender thread was, split into HTTP (including the sandbox's validation
and outbox write: the stand-in for SendGrid's latency) and its ledger writes. The
profile covers both threads.
"""

from __future__ import annotations

import cProfile
import dataclasses
import json
import math
import multiprocessing
import pstats
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.harness import Context, Metric, StageResult, stage
from bench.ingest import _top
from connectors.sendgrid import SendGridClient, SendGridSettings, push_templates
from hearth.ledger import SEND_ID_ARG, Ledger, key_of
from hearth.mail_batches import send_planned
from hearth.policy import Candidate, decide
from hearth.sending import Planned, RunSummary, ShopContext, policy_config, template_data
from hearth.sequences import load_sequences
from hearth.templates import template_payloads

NOW = datetime(2026, 11, 20, 18, tzinfo=UTC)  # 18:00 UTC: daytime in every zone below
# Local times at NOW: 18:00, 18:00, 19:00, 13:00, 12:00, 10:00 — all inside 08:00–21:00.
TIMEZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles")
TARGET_PER_SECOND = 5_000.0
STEP = "reminder"
SHOP = ShopContext(
    name="Bench Shop",
    url="https://bench-shop.example",
    address="1 Bench Street, Springfield",
    public_url="https://hearth.bench-shop.example",
    secret_key="bench-secret-not-a-secret",
)


# -- the candidates -------------------------------------------------------------------


def candidates(n: int, *, sequence: str = "abandoned_cart", priority: int = 1) -> list[Candidate]:
    """``n`` distinct, sendable candidates of step :data:`STEP`, with trigger-row payloads."""
    trigger_at = NOW - timedelta(hours=2)
    result = []
    for i in range(n):
        customer_key = f"bench-{i:07d}"
        items = [
            {
                "title": f"Product {(i + j) % 97}",
                "quantity": 1 + (i + j) % 3,
                "unit_price": 12.5 + (i + j) % 40,
                "image_url": f"https://cdn.bench-shop.example/p/{(i + j) % 97}.jpg",
                "product_url": f"https://bench-shop.example/products/p-{(i + j) % 97}",
            }
            for j in range(1 + i % 3)  # one to three items a cart
        ]
        payload = {
            "customer_key": customer_key,
            "trigger_id": f"checkout-{i}",
            "email": f"person{i}@example.com",
            "first_name": f"Person{i}",
            "checkout_url": f"https://bench-shop.example/checkouts/{i}/recover",
            "items": items,
            "checkout_created_at": trigger_at,
        }
        result.append(
            Candidate(
                customer_key=customer_key,
                email=payload["email"],
                first_name=payload["first_name"],
                timezone=TIMEZONES[i % len(TIMEZONES)],
                is_marketable=True,
                email_consent="SUBSCRIBED",
                channels=frozenset({"shopify"}),
                sequence=sequence,
                step=STEP,  # type: ignore[arg-type] - step names, as load_candidates passes them
                trigger_id=payload["trigger_id"],
                trigger_at=trigger_at,
                due_at=trigger_at + timedelta(hours=1),
                priority=priority,
                payload=payload,
            )
        )
    return result


# -- timing wrappers --------------------------------------------------------------------


SENDER = " (sender)"  # suffix of the buckets timed on the background sender thread


class Timed:
    """Delegates to ``target`` and adds the wall time of each named method's calls to ``seconds``.

    Calls on a thread other than the main one go to the bucket's name plus :data:`SENDER`, and the
    CPU time of those calls (that thread's own) to the same bucket in ``cpu``.
    """

    def __init__(
        self, target: Any, seconds: defaultdict[str, float], names: dict[str, str], cpu: defaultdict[str, float]
    ) -> None:
        self._target, self._seconds, self._names, self._cpu = target, seconds, names, cpu
        self._lock = threading.Lock()

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        bucket = self._names.get(attr)
        if bucket is None or not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return value(*args, **kwargs)
            finally:
                elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
                name = bucket if threading.current_thread() is threading.main_thread() else bucket + SENDER
                with self._lock:
                    self._seconds[name] += elapsed
                    self._cpu[name] += cpu

        return timed


LEDGER_METHODS = {
    **dict.fromkeys(("recover", "statuses", "recent_sends"), "ledger look-ups"),
    "reserve": "reserve",
    **dict.fromkeys(("mark_sending", "mark_accepted", "mark_failed", "mark_unknown"), "ledger"),
}
CLIENT_METHODS = {"mail_bodies": "mail bodies", "send": "HTTP"}
MAIN_PHASES = ("ledger look-ups", "policy", "template data", "reserve", "send loop")


# -- the sandbox in a child process -----------------------------------------------------


def _serve(outbox_dir: Path, conn: Connection) -> None:
    """Child process: run a SendGrid sandbox until the parent says stop."""
    from sandbox.sendgrid import SendGridSandbox

    with SendGridSandbox(outbox_dir, webhook_url=None) as server:
        conn.send(server.env())
        while conn.recv() == "cpu":  # blocks until the parent asks for its CPU time, or says stop
            conn.send(time.process_time())
        conn.send(server.requests_served)


class ChildSandbox:
    """A SendGrid sandbox in a spawned child process; ``env`` points a client at it."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = outbox_dir
        self.requests_served = 0
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(outbox_dir, child), daemon=True)

    def __enter__(self) -> ChildSandbox:
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the SendGrid sandbox did not start within 60 s")
        self.env: dict[str, str] = self._conn.recv()
        return self

    def cpu(self) -> float:
        """The sandbox process's CPU seconds so far (all its threads)."""
        self._conn.send("cpu")
        return float(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        if self._conn.poll(30):
            self.requests_served = self._conn.recv()
        self._process.join(30)


# -- the step ---------------------------------------------------------------------------


@dataclasses.dataclass
class StepRun:
    summary: RunSummary
    seconds: defaultdict[str, float]
    wall: float
    cpu: float
    planned: int
    thread_cpu: defaultdict[str, float]  # "main" (the whole step on this thread) and the sender's buckets

    @property
    def sender_cpu(self) -> float:
        return sum(v for k, v in self.thread_cpu.items() if k.endswith(SENDER))


def run_step(cands: list[Candidate], state_path: Path, client: SendGridClient, template_ids: dict[str, str]) -> StepRun:
    """The step as ``plan`` + ``send_planned`` run it (minus the warehouse), timed by phase."""
    sequence = dataclasses.replace(load_sequences()["abandoned_cart"], holdout_share=0.0)
    seconds: defaultdict[str, float] = defaultdict(float)
    thread_cpu: defaultdict[str, float] = defaultdict(float)
    summary = RunSummary(sequence.name, dry_run=False)
    wall, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    with Ledger(state_path) as raw_ledger:
        ledger: Any = Timed(raw_ledger, seconds, LEDGER_METHODS, thread_cpu)
        ledger.recover()
        keys = [key_of(c) for c in cands]  # as plan() does
        known = ledger.statuses(keys)
        fresh = [c for c, key in zip(cands, keys, strict=True) if known.get(key, "reserved") == "reserved"]
        summary.considered = len(fresh)
        recent = ledger.recent_sends({c.customer_key for c in fresh}, NOW - timedelta(hours=16))
        started, started_cpu = time.perf_counter(), time.thread_time()
        decisions = decide(
            fresh,
            now=NOW,
            suppressed=set(),
            recent_sends=recent,
            ordered_since=set(),
            config=policy_config(sequence, cap_hours=16, shop_timezone="UTC"),
        )
        seconds["policy"] += time.perf_counter() - started
        thread_cpu["policy"] += time.thread_time() - started_cpu
        started, started_cpu = time.perf_counter(), time.thread_time()
        step = sequence.step(STEP)
        planned = [Planned(c, template_data(c, step, SHOP)) for c, d in decisions if d.kind == "send"]
        seconds["template data"] += time.perf_counter() - started
        thread_cpu["template data"] += time.thread_time() - started_cpu
        timed_client: Any = Timed(client, seconds, CLIENT_METHODS, thread_cpu)
        started = time.perf_counter()
        send_planned(planned, ledger=ledger, client=timed_client, template_ids=template_ids,
                     run_id=f"bench-{time.time_ns()}", summary=summary)  # fmt: skip
        seconds["send loop"] = time.perf_counter() - started - seconds["reserve"]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    thread_cpu["main"] = time.thread_time() - main_cpu
    # Key hashing, batching, Planned objects, closing the ledger.
    seconds["other"] = max(0.0, wall - sum(seconds[p] for p in MAIN_PHASES))
    return StepRun(summary, seconds, wall, cpu, len(planned), thread_cpu)


def _outbox_keys(outbox_dir: Path) -> tuple[int, int, int]:
    """(outbox lines, distinct send keys, distinct X-Message-Ids) of the sandbox's outbox."""
    lines, keys, messages = 0, set(), set()
    with (outbox_dir / "outbox.jsonl").open() as handle:
        for line in handle:
            record = json.loads(line)
            lines += 1
            keys.add(record["custom_args"][SEND_ID_ARG])
            messages.add(record["x_message_id"])
    return lines, len(keys), len(messages)


def _client(env: dict[str, str]) -> SendGridClient:
    return SendGridClient(SendGridSettings.from_env({**env, "SENDGRID_FROM_EMAIL": "hello@bench-shop.example"}))


def _template_ids(client: SendGridClient) -> dict[str, str]:
    return {name.removeprefix("hearth:"): tid for name, tid in push_templates(client, template_payloads()).items()}


class _Profiles:
    """Several threads' profilers as one, for ``pstats.Stats`` (which reads ``create_stats``/``stats``)."""

    def __init__(self, profilers: list[cProfile.Profile]) -> None:
        self.profilers = profilers
        self.stats: dict[Any, Any] = {}

    def create_stats(self) -> None:
        merged = pstats.Stats(self.profilers[0])
        for other in self.profilers[1:]:
            merged.add(other)
        self.stats = merged.stats  # type: ignore[attr-defined]


def _profile(n: int, root: Path) -> tuple[str, list[dict[str, Any]]]:
    """The step for ``n`` recipients under cProfile (every thread), against a fresh sandbox and ledger."""
    profiler = cProfile.Profile()
    threads: list[cProfile.Profile] = []

    def profile_thread(*_: Any) -> None:  # runs first thing in each new thread: profile it too
        sys.setprofile(None)
        threads.append(cProfile.Profile())
        threads[-1].enable()

    with ChildSandbox(root / "sendgrid") as server:
        client = _client(server.env)
        ids = _template_ids(client)
        cands = candidates(n)
        threading.setprofile(profile_thread)
        profiler.enable()
        try:
            run_step(cands, root / "state.sqlite", client, ids)
        finally:
            profiler.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
    return _top(_Profiles([profiler, *threads]))  # type: ignore[arg-type]


@stage("sequences.step_100k", shop="none")
def step_100k(ctx: Context) -> StageResult:
    """One sequence step to N recipients through policy, templates, ledger and the SendGrid sandbox."""
    n = int(ctx.size.option("sequences.recipients", 5_000))
    outbox_dir = ctx.work_dir / "sendgrid"
    with ChildSandbox(outbox_dir) as server:
        client = _client(server.env)
        ids = _template_ids(client)  # setup, as `hearth templates push` before a run: not timed
        cands = candidates(n)
        ctx.log(f"{n:,} candidates built; sending …")
        sandbox_cpu = server.cpu()
        run = run_step(cands, ctx.work_dir / "state.sqlite", client, ids)
        sandbox_cpu = server.cpu() - sandbox_cpu
    lines, keys, messages = _outbox_keys(outbox_dir)
    (outbox_dir / "outbox.jsonl").unlink()  # up to ~200 MB at full size; the counts are kept
    s = run.summary
    if s.sent != n or lines != n or keys != n:
        raise AssertionError(f"expected {n} sends, got sent={s.sent} outbox={lines} distinct keys={keys}")
    rate = n / run.wall
    loop = run.seconds["send loop"]
    busy = run.seconds["HTTP" + SENDER] + run.seconds["ledger" + SENDER] + run.seconds["mail bodies" + SENDER]
    ctx.log(f"{n:,} recipients in {run.wall:.2f} s ({rate:,.0f}/s), {s.requests} requests; main thread:")
    for phase in (*MAIN_PHASES, "other"):
        cpu = f"  (CPU {run.thread_cpu[phase]:.3f} s)" if phase in run.thread_cpu else ""
        ctx.log(f"  {phase:16} {run.seconds[phase]:7.3f} s {run.seconds[phase] / run.wall:6.1%}{cpu}")
    ctx.log(f"  in the send loop, the sender thread was busy {busy / loop if loop else 0:.0%} of it:")
    for bucket in ("HTTP", "ledger", "mail bodies"):
        name = bucket + SENDER
        ctx.log(f"    {name:25} {run.seconds[name]:7.3f} s  (CPU {run.thread_cpu[name]:.3f} s)")
    ctx.log(f"    {'mail bodies (main)':25} {run.seconds['mail bodies']:7.3f} s  (overlaps the requests)")
    # Were each thread and the sandbox on a core of their own: this thread's CPU outside the send loop,
    # then per batch the sender's CPU and the sandbox's, one after the other (I/O waits not counted).
    cpu_bound = run.thread_cpu["main"] - run.thread_cpu["mail bodies"] + run.sender_cpu + sandbox_cpu
    ctx.log(
        f"  CPU: this thread {run.thread_cpu['main']:.2f} s, sender thread {run.sender_cpu:.2f} s, "
        f"sandbox {sandbox_cpu:.2f} s → {n / cpu_bound:,.0f}/s if each had a core (no I/O waits)"
    )
    profile_n = int(ctx.size.option("sequences.profile_recipients", min(n, 5_000)))
    profile_text, top = _profile(profile_n, ctx.work_dir / "profile")
    for row in top:
        ctx.log(f"  {row['own_seconds']:8.4f} s {row['share']:6.1%} {row['calls']:>9,} calls  {row['function']}")
    expected = math.ceil(n / 1000)
    metrics = [
        Metric.against_target(
            "mail-send requests",
            s.requests,
            "",
            expected,
            "lower",
            note=f"⌈{n:,}/1000⌉ = {expected}; retries would add to it",
        ),
        Metric.against_target("recipients per second (whole step)", round(rate), "/s", TARGET_PER_SECOND, "higher"),
        Metric(
            "recipients per second in the send loop",
            round(n / loop) if loop else 0,
            "/s",
            note="from the first body to the last ledger write (requests one at a time, next body built meanwhile)",
        ),
        Metric(
            "sender thread busy in the send loop",
            round(busy / loop, 3) if loop else 0.0,
            note=f"HTTP {run.seconds['HTTP' + SENDER]:.2f} s (incl. the sandbox's work), "
            f"ledger writes {run.seconds['ledger' + SENDER]:.2f} s",
        ),
        Metric("CPU µs per recipient", round(run.cpu / n * 1e6, 1), "µs", note="this process only (not the sandbox)"),
        Metric(
            "recipients per second, CPU-bound estimate",
            round(n / cpu_bound),
            "/s",
            note="this thread's CPU outside the send loop + the sender thread's + the sandbox's, "
            "as if each had a core of its own and no I/O waited (far less moved by the load average than wall time)",
        ),
        Metric(
            "sandbox CPU µs per recipient",
            round(sandbox_cpu / n * 1e6, 1),
            "µs",
            note="the SendGrid stand-in's process: parsing, validating, outbox (SendGrid's side in production)",
        ),
        *[
            Metric(f"share: {phase}", round(run.seconds[phase] / run.wall, 3), note=f"{run.seconds[phase]:.2f} s")
            for phase in sorted((*MAIN_PHASES, "other"), key=lambda p: -run.seconds[p])
        ],
    ]
    return StageResult(
        metrics,
        details={
            "recipients": n,
            "now": NOW.isoformat(),
            "holdout_share": 0.0,
            "planned": run.planned,
            "sent": s.sent,
            "requests": s.requests,
            "requests_served": server.requests_served,
            "outbox_lines": lines,
            "distinct_send_keys": keys,
            "distinct_message_ids": messages,
            "wall_seconds": round(run.wall, 3),
            "cpu_seconds": round(run.cpu, 3),
            "sandbox_cpu_seconds": round(sandbox_cpu, 3),
            "thread_cpu_seconds": {k: round(v, 4) for k, v in run.thread_cpu.items()},
            "phase_seconds": {k: round(v, 4) for k, v in run.seconds.items()},
            "profile_recipients": profile_n,
            "profile_top": top,
        },
        text=profile_text,
    )
