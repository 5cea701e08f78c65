"""The benchmark harness: a stage registry, one child process per stage, results and their table.

A *stage* is one function ``fn(ctx: Context) -> StageResult`` registered with
:func:`stage`. Each stage runs in a fresh (spawned) Python process, so its peak
RSS (``ru_maxrss``) is its own and not the leftovers of an earlier stage. A stage
reports :class:`Metric` values; a metric compares itself to a target, and its
``ratio`` is always against a baseline measured in the same run (or the target).

Adding a stage: write ``@stage("group.name") def my_stage(ctx): ...`` in a module
listed in :data:`STAGE_MODULES`; ``python -m bench.run --only group`` runs it.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

from bench.report import load_results, merge_run, render_tables, save_results, summary_lines, write_readme

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"  # gitignored: generated shops and scratch space
RESULTS_PATH = BENCH_DIR / "results.json"
README_PATH = BENCH_DIR / "README.md"
# Modules whose import registers stages; a new stage module is one more entry here.
STAGE_MODULES = ("bench.ingest", "bench.ingest_limits", "bench.sequences", "bench.orchestration", "bench.warehouse")


# -- what a run measures -------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """One benchmark size: the demo shop to generate plus per-stage options.

    Attributes:
        name: "quick", "full", or any name a test chooses.
        customers, orders_per_customer, fb_ads, seed, now: arguments of ``generate_shop``
            (``now`` as ISO-8601, fixed so the cached shop is reused across days).
        options: stage knobs by dotted name (``"ingest.amazon_requests"``), read with :meth:`option`.
    """

    name: str
    customers: int
    orders_per_customer: float | None = None
    fb_ads: int | None = None
    seed: int = 42
    now: str = "2026-11-01T00:00:00+00:00"
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    @property
    def shop_key(self) -> str:
        """The cache key of this size's shop: every generator argument."""
        opc = "natural" if self.orders_per_customer is None else f"{self.orders_per_customer:g}"
        stamp = self.now[:19].replace(":", "").replace("-", "")
        # The ad count only when set, so the keys of shops cached before it existed still match.
        ads = "" if self.fb_ads is None else f"-a{self.fb_ads}"
        return f"shop-c{self.customers}-o{opc}-s{self.seed}-{stamp}{ads}"


Better = Literal["higher", "lower"]


@dataclass
class Metric:
    """One measured value, its target and its ratio.

    Attributes:
        value, unit: the measurement (e.g. ``12.3``, ``"µs/record"``).
        target: the bound ``value`` must meet (None: informational); ``better`` says which side.
        ratio: the value against a same-run baseline or the target, with ``ratio_of`` naming
            the division (e.g. ``"target / measured"``); None when there is nothing to divide.
    """

    name: str
    value: float
    unit: str = ""
    target: float | None = None
    better: Better = "lower"
    ratio: float | None = None
    ratio_of: str = ""
    note: str = ""

    @property
    def meets(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    @classmethod
    def against_target(
        cls, name: str, value: float, unit: str, target: float, better: Better, note: str = ""
    ) -> Metric:
        """A value whose ratio is its target's multiple (≥ 1 meets the target)."""
        if better == "lower":
            # No multiple of a value at or below zero (an overhead lost in the noise): none shown.
            ratio, ratio_of = (target / value if value > 0 else None), "target / measured"
        else:
            ratio, ratio_of = (value / target if target else None), "measured / target"
        return cls(name, value, unit, target, better, ratio, ratio_of, note)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "meets": self.meets}


@dataclass
class StageResult:
    """What a stage returns: its metrics, raw numbers behind them, and free text (e.g. a profile)."""

    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    text: str = ""


ShopNeed = Literal["size", "small", "none"]


@dataclass(frozen=True)
class Context:
    """What a stage gets: the size, the shop it asked for (if any) and a scratch directory."""

    size: Size
    shop_dir: Path | None
    work_dir: Path

    @property
    def shop(self) -> Path:
        if self.shop_dir is None:
            raise RuntimeError("this stage was registered with shop='none' but reads the shop")
        return self.shop_dir

    def log(self, message: str) -> None:
        print(f"    {message}", flush=True)


StageFn = Callable[[Context], StageResult]


@dataclass(frozen=True)
class Stage:
    name: str
    fn: StageFn
    shop: ShopNeed = "size"

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


REGISTRY: dict[str, Stage] = {}


def stage(name: str, *, shop: ShopNeed = "size") -> Callable[[StageFn], StageFn]:
    """Register ``fn`` as stage ``name`` (``group.what``).

    ``shop``: "size" gets the size's shop (the big one at full size), "small" a shop of
    at most :data:`SMALL_SHOP`'s customers (for stages that measure rates, not volume:
    loading the big shop into a sandbox alone takes minutes), "none" no shop.
    """

    def register(fn: StageFn) -> StageFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"stage {name!r} is registered twice ({REGISTRY[name].fn.__module__}, {fn.__module__})")
        REGISTRY[name] = Stage(name, fn, shop)
        return fn

    return register


def load_stages() -> dict[str, Stage]:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    return REGISTRY


def select(stages: Iterable[Stage], only: Iterable[str] = ()) -> list[Stage]:
    """The stages named by ``only`` (a group like ``ingest`` or a full name); all when empty."""
    wanted = list(only)
    chosen = [s for s in stages if not wanted or s.group in wanted or s.name in wanted]
    unknown = [w for w in wanted if not any(w in (s.group, s.name) for s in stages)]
    if unknown:
        known = ", ".join(sorted({s.group for s in stages} | {s.name for s in stages}))
        raise ValueError(f"no stage or group named {', '.join(unknown)}; choose from {known}")
    return chosen


# The shop of "small" stages: the quick size's parameters, so both share one cached shop.
SMALL_SHOP = Size("small", customers=2_000)


# -- running -------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _in_child(module: str, name: str, ctx: Context) -> dict[str, Any]:
    """Run one stage inside the spawned child; never raises (errors come back as text)."""
    importlib.import_module(module)  # registers the stage in this fresh interpreter
    baseline = psutil.Process().memory_info().rss / 2**20
    started = time.perf_counter()
    try:
        result = REGISTRY[name].fn(ctx)
        error = None
    except Exception:
        result, error = StageResult(), traceback.format_exc()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "baseline_rss_mb": round(baseline, 1),
        "metrics": [m.to_dict() for m in result.metrics],
        "details": result.details,
        "text": result.text,
        "error": error,
    }


def _spawned(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process (no inherited memory, threads or locks)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def _make_shop(shop_dir: Path, size: Size) -> dict[str, Any]:
    """Generate a shop into a temp directory and rename it into place (a crash leaves no half shop)."""
    from sandbox.generator import generate_shop

    started = time.perf_counter()
    temp = shop_dir.with_name(f".tmp-{shop_dir.name}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    truth = generate_shop(
        temp,
        seed=size.seed,
        customers=size.customers,
        now=datetime.fromisoformat(size.now),
        orders_per_customer=size.orders_per_customer,
        fb_ads=size.fb_ads,
    )
    temp.rename(shop_dir)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "row_counts": truth.get("row_counts", {}),
    }


def ensure_shop(size: Size, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The size's shop under ``out_dir/shops/<key>``, generated (in a child process) unless cached."""
    shop_dir = out_dir / "shops" / size.shop_key
    truth = shop_dir / "ground_truth.json"
    if truth.exists():
        counts = json.loads(truth.read_text()).get("row_counts", {})
        return shop_dir, {"cached": True, "row_counts": counts}
    shop_dir.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating the {size.name} shop ({size.customers:,} customers) into {shop_dir} …", flush=True)
    return shop_dir, {"cached": False, **_spawned(_make_shop, shop_dir, size)}


def run(
    size: Size,
    stages: list[Stage],
    *,
    command: str,
    out_dir: Path = OUT_DIR,
    results_path: Path = RESULTS_PATH,
    readme_path: Path = README_PATH,
) -> dict[str, Any]:
    """Run ``stages`` one child process each, merge them into ``results_path``, re-render the README.

    Returns the results entry of this size.
    """
    host = machine()  # before the shop and the stages load the machine themselves
    shops: dict[str, Path | None] = {"none": None}
    shop: dict[str, Any] = {}
    if any(s.shop == "size" for s in stages):
        shops["size"], shop = ensure_shop(size, out_dir)
    if any(s.shop == "small" for s in stages):
        small = size if size.customers <= SMALL_SHOP.customers else SMALL_SHOP
        shops["small"], _ = ensure_shop(small, out_dir)
        if small is size:
            shops["size"] = shops["small"]
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    done: dict[str, dict[str, Any]] = {}
    for entry in stages:
        print(f"[{entry.name}]", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"{entry.name}-", dir=_scratch(out_dir)) as work:
            ctx = Context(size, shops[entry.shop], Path(work))
            try:
                outcome = _spawned(_in_child, entry.fn.__module__, entry.name, ctx)
            except Exception as exc:  # the child died (killed, out of memory): record it, run the rest
                outcome = _died(exc)
        shop_used = "size" if shops[entry.shop] == shops.get("size") else entry.shop
        done[entry.name] = {"date": date, "command": command, "shop": shop_used, **outcome}
        print(summary_lines(entry.name, done[entry.name]), flush=True)
    entry_of_size = {
        "size": asdict(size),
        "machine": host,
        "date": date,
        "command": command,
        "shop": shop,
        "stages": done,
    }
    results = merge_run(load_results(results_path), size.name, entry_of_size)
    save_results(results_path, results)
    write_readme(readme_path, render_tables(results))
    return results[size.name]


def _died(exc: BaseException) -> dict[str, Any]:
    """The outcome of a stage whose process died before it could report."""
    empty: dict[str, Any] = {"seconds": 0.0, "peak_rss_mb": 0.0, "baseline_rss_mb": 0.0, "metrics": []}
    return {**empty, "details": {}, "text": "", "error": f"the stage's process died: {exc!r}"}


def _scratch(out_dir: Path) -> Path:
    path = out_dir / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine (what a number depends on)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        # Other work on the machine slows every wall-clock number: say how busy it was.
        "load_average": round(os.getloadavg()[0], 2),
    }
