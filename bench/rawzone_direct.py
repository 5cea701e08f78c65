"""The raw zone of a big shop without the Shopify HTTP round trip: the same records, hours faster.

The real first ingest (``bench.rawzone_cache._ingest``) has the Shopify sandbox run
each stream's bulk query, write it as JSONL (~40 GB for 10M orders, at a few MB/s),
serve it, and the connector download, parse and reassemble it. Here the very same
pieces run in-process, minus the JSON text:

- the connector's own bulk query (``connectors.shopify.queries.bulk_query`` over the
  window that ``hearth.extract.incremental_window`` gives a first run);
- the sandbox's own bulk executor over the shop (``BulkOperations.lines``: validation,
  chunking, the projector over ``Renderer``'s dicts, the ``__parentId`` line split),
  with :class:`CompiledProjector`, the sandbox's projector compiled to Python code;
- the connector's own reassembly (``connectors.shopify.bulk.assemble``) and record
  check (``connectors.shopify.streams.split``);
- ``hearth.extract.extract_window`` landing each window through ``RawZone.open_load``
  and logging the load; the cursor is set to the window's end as
  ``extract_incremental`` sets it, once every file of the stream is durable.

Only the JSON round trip is skipped: the projector emits JSON-native values (str, int,
bool, None, lists, dicts), which ``json.dumps`` then ``json.loads`` leaves equal;
``tests/unit/test_rawzone_direct.py`` checks the two raw zones record for record.

Both cores: big streams are cut into sub-windows at quantiles of ``updated_at`` (each a
load of its own, as a backfill cuts windows) and landed by forked workers that share
the parent's ``ShopData`` copy-on-write. Amazon and Facebook keep the real HTTP path
(the 1M-customer shop's 1.5M Amazon orders take minutes, not hours), run by the parent
meanwhile. Cost on these machines: ~0.3 ms of CPU per order (10M orders: ~50 CPU-minutes).
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from connectors.base import Page, Window, iso
from connectors.shopify.bulk import assemble
from connectors.shopify.queries import SPECS, StreamSpec, bulk_query, search_filter
from connectors.shopify.settings import ShopifySettings
from connectors.shopify.streams import ShopifyStream, split
from hearth.config import Settings
from hearth.extract import extract_window, incremental_window
from hearth.rawzone import RawZone
from hearth.state import StateStore
from sandbox.shopify.bulk import BulkOperations, _Projector
from sandbox.shopify.resolvers import Renderer
from sandbox.shopify.root import root_value
from sandbox.shopify.schema import admin_schema
from sandbox.shopify.store import Collection, ShopData
from sandbox.shopify.wire import resolve_field

SOURCE = "shopify"
HTTP_SOURCES = ("amazon", "facebook")
LAG = timedelta(minutes=1)  # extract_incremental's default lag, as the real ingest uses it
JOB_RECORDS = 1_250_000  # records per sub-window: 10M orders make 8 jobs, enough to balance 2 workers
# Rough CPU cost of one record by stream (orders carry lines, refunds, journeys): biggest jobs go first.
COST = {"orders": 4.0, "abandoned_checkouts": 2.5, "customers": 1.0, "products": 1.0}
# The real ingest's Amazon rate: the documented 0.0056 req/s would take days.
AMAZON_RATE = 1000.0
# A worker allocates millions of short-lived dicts: collect the young generation less often.
WORKER_GC_THRESHOLD = (50_000, 20, 100)
_MISSING = object()

Log = Callable[[str], None]


class CompiledProjector(_Projector):
    """The sandbox's bulk projector with each selection compiled to one Python function.

    :class:`sandbox.shopify.bulk._Projector` walks a list of compiled fields per object;
    here that list becomes straight-line code (``exec``), which saves the loop and a call
    per field. The semantics are the projector's own, field by field: a dict key
    (``resolve_field`` when it is missing, for the same error), called with
    ``(info, **arguments)`` when callable, nested objects and lists through the same
    :meth:`object` and :meth:`_complete`.
    """

    def __init__(self, walker: Any, context: dict[str, Any]) -> None:
        super().__init__(walker, context)
        self._functions: dict[tuple[int, str], Callable[[dict[str, Any]], dict[str, Any]]] = {}

    def object(self, value: dict[str, Any], type_: Any, selection_set: Any) -> dict[str, Any]:
        runtime = value.get("__typename")
        concrete: Any = self.walker.schema.get_type(runtime) if runtime else type_
        key = (id(selection_set), concrete.name)
        function = self._functions.get(key)
        if function is None:
            function = self._functions[key] = self._generate(concrete, selection_set)
        return function(value)

    def _generate(self, concrete: Any, selection_set: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
        scope: dict[str, Any] = {"MISSING": _MISSING, "resolve_field": resolve_field,
                                 "project": self.object, "complete": self._complete}  # fmt: skip
        code = ["def projection(v):", "    out = {}"]
        for n, (key, info, arguments, depth, leaf, field_type, selection) in enumerate(
            self._compile(concrete, selection_set)
        ):
            scope[f"t{n}"], scope[f"i{n}"], scope[f"a{n}"], scope[f"s{n}"] = field_type, info, arguments, selection
            if info is None:  # __typename
                code.append(f"    out[{key!r}] = t{n}")
                continue
            code += [
                f"    x = v.get({info.field_name!r}, MISSING)",
                "    if x is MISSING:",
                f"        x = resolve_field(v, i{n}, **a{n})",
                "    elif callable(x):",
                f"        x = x(i{n}, **a{n})" if arguments else f"        x = x(i{n})",
            ]
            if leaf:
                code.append(f"    out[{key!r}] = x")
            elif depth:
                code.append(f"    out[{key!r}] = None if x is None else complete(x, {depth}, t{n}, s{n})")
            else:
                code.append(f"    out[{key!r}] = None if x is None else project(x, t{n}, s{n})")
        code.append("    return out")
        exec("\n".join(code), scope)  # the code holds only the validated query's names and keys
        return scope["projection"]


class DirectShopifyStream:
    """A Shopify connector stream whose bulk operation runs in-process over the sandbox's executor.

    Implements ``connectors.base.Stream`` like :class:`~connectors.shopify.streams.ShopifyStream`
    (whose ``record_id``/``record_updated_at`` it borrows) on its bulk path.
    """

    source = SOURCE
    record_id = ShopifyStream.record_id
    record_updated_at = ShopifyStream.record_updated_at

    def __init__(
        self,
        spec: StreamSpec,
        bulk: BulkOperations,
        root: dict[str, Any],
        page_records: int = ShopifySettings.bulk_page_records,
    ) -> None:
        self.spec, self.name = spec, spec.name
        self.bulk, self.root, self.page_records = bulk, root, page_records

    def pages(self, window: Window) -> Iterator[Page]:
        search = search_filter(window)
        where = f"in-process bulk ({self.spec.root}, query: {search!r})"
        lines = self.bulk.lines(bulk_query(self.spec, search), self.root, CompiledProjector)
        for records in assemble(lines, self.spec.child_fields, self.page_records):
            good, rejects = split(records)
            yield Page(good, rejects, where)


@dataclass(frozen=True)
class Job:
    """One load: a stream's records within a (sub-)window."""

    stream: str
    window: Window
    records: int

    @property
    def cost(self) -> float:
        return self.records * COST.get(self.stream, 1.0)


@dataclass
class _Shop:
    """What a worker needs; set before forking, so workers inherit it copy-on-write."""

    bulk: BulkOperations
    root: dict[str, Any]
    raw_dir: Path
    state_path: Path


_SHOP: _Shop | None = None


def _collection(data: ShopData, spec: StreamSpec) -> Collection:
    by_root = {"customers": data.customers, "orders": data.orders,
               "abandonedCheckouts": data.checkouts, "products": data.products}  # fmt: skip
    return by_root[spec.root]


def _seconds(ts: datetime) -> int:
    """Whole seconds since the epoch, truncated as ``connectors.base.iso`` truncates."""
    return int(ts.timestamp())  # every window here starts after 1970: int() truncates down


def plan_jobs(data: ShopData, windows: dict[str, Window], job_records: int = JOB_RECORDS) -> list[Job]:
    """Every stream's window, cut into sub-windows of ~``job_records`` records; costliest first.

    Cuts fall on whole seconds at quantiles of the records' ``updated_at``: the search
    filter compares whole seconds, so the sub-windows partition the window exactly.
    """
    jobs: list[Job] = []
    for name, window in windows.items():
        low, high = _seconds(window.start), _seconds(window.end)
        # updated_at as whole seconds (the sandbox floors timestamps on load; nulls are int64's minimum)
        seconds = _collection(data, SPECS[name]).column("updated_at") // 1_000_000
        inside = np.sort(seconds[(seconds >= low) & (seconds < high)])
        parts = max(1, -(-len(inside) // job_records))
        quantiles = {int(inside[len(inside) * k // parts]) for k in range(1, parts)}
        cuts = sorted(s for s in quantiles if low < s < high)
        bounds = [window.start, *(datetime.fromtimestamp(s, UTC) for s in cuts), window.end]
        edges = np.searchsorted(inside, [low, *cuts, high])
        for index in range(len(bounds) - 1):
            count = int(edges[index + 1] - edges[index])
            jobs.append(Job(name, Window(bounds[index], bounds[index + 1]), count))
    return sorted(jobs, key=lambda job: -job.cost)


def _worker_start() -> None:
    gc.set_threshold(*WORKER_GC_THRESHOLD)


def _land(job: Job) -> tuple[Job, int, int, float]:
    """Land one job (in a worker, or in-process): ``(job, rows, quarantined, seconds)``."""
    assert _SHOP is not None, "the shop is set before any job runs"
    started = time.perf_counter()
    stream = DirectShopifyStream(SPECS[job.stream], _SHOP.bulk, _SHOP.root)
    with StateStore(_SHOP.state_path) as state:
        result = extract_window(stream, RawZone(_SHOP.raw_dir), state, job.window)
    return job, result.rows, result.quarantined, time.perf_counter() - started


def ingest_http(shop_dir: Path, settings: Settings, now: datetime, sources: tuple[str, ...] = HTTP_SOURCES) -> dict:
    """The real path for ``sources`` (Amazon, Facebook): their sandboxes over HTTP, the real connectors."""
    from flows.sources import land_every_stream
    from sandbox.amazon import AmazonSandbox
    from sandbox.facebook import FacebookSandbox

    servers = {"amazon": lambda: AmazonSandbox(shop_dir, rate_per_second=AMAZON_RATE),
               "facebook": lambda: FacebookSandbox(shop_dir)}  # fmt: skip
    env = {"HEARTH_DATA_DIR": str(settings.data_dir)}
    started = [servers[source]() for source in sources]
    try:
        for server in started:
            server.start()
            env.update(server.env())  # type: ignore[attr-defined]
        return land_every_stream(Settings.from_env(env, dotenv=False), now=now, sources=sources)
    finally:
        for server in started:
            server.stop()


def produce(
    shop_dir: Path,
    data_dir: Path,
    *,
    workers: int = 2,
    job_records: int = JOB_RECORDS,
    http_sources: tuple[str, ...] = HTTP_SOURCES,
    now: datetime | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Land the whole shop in ``data_dir/raw`` and its cursors in ``data_dir/state.sqlite``.

    Args:
        shop_dir: the demo shop (``sandbox/shop/tables.py`` layout).
        data_dir: a ``HEARTH_DATA_DIR`` (normally empty: a first ingest).
        workers: processes landing Shopify jobs (1: in this process, no fork).
        job_records: records per Shopify sub-window.
        http_sources: sources that take the real HTTP path meanwhile.
        now: the run's clock (default: the wall clock, as the real ingest: every record is older).

    Returns:
        ``{"records": {"<source>.<stream>": rows}, "seconds": {...}, "jobs": n}``.
    """
    global _SHOP
    clock = time.perf_counter()
    now = now or datetime.now(UTC)
    settings = Settings.from_env({"HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
    data = ShopData(shop_dir)
    bulk = BulkOperations(admin_schema(), data_dir, lambda: "")  # only .lines(): nothing is written there
    root = root_value(data, Renderer(data), bulk)
    loaded = time.perf_counter() - clock
    log(f"shop loaded in {loaded:.0f} s")
    streams = {name: DirectShopifyStream(spec, bulk, root) for name, spec in SPECS.items()}
    with StateStore(settings.state_path) as state:
        windows = {
            name: incremental_window(stream, state, now=now, initial_start=settings.history_start, lag=LAG)
            for name, stream in streams.items()
        }
    jobs = plan_jobs(data, windows, job_records)
    _SHOP = _Shop(bulk, root, settings.raw_dir, settings.state_path)
    rows = {f"{SOURCE}.{name}": 0 for name in SPECS}
    http_rows: dict[str, int] = {}
    http_seconds = 0.0
    try:
        if workers > 1:
            # Fork before any server thread starts; the children share the shop's arrays. Frozen,
            # the shop's millions of Python objects (schema, catalogue) are left out of every
            # garbage collection: collections took a third of a worker's time.
            gc.freeze()
            with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_start) as pool:
                landing = pool.imap_unordered(_land, jobs)
                started = time.perf_counter()
                http_rows = ingest_http(shop_dir, settings, now, http_sources) if http_sources else {}
                http_seconds = time.perf_counter() - started
                log(f"{', '.join(http_sources) or 'no HTTP sources'} over HTTP: {http_seconds:.0f} s")
                for job, landed, _quarantined, seconds in landing:
                    rows[f"{SOURCE}.{job.stream}"] += landed
                    log(f"{job.stream} {iso(job.window.start)}…{iso(job.window.end)}: {landed:,} in {seconds:.0f} s")
        else:
            for job in jobs:
                rows[f"{SOURCE}.{job.stream}"] += _land(job)[1]
            http_rows = ingest_http(shop_dir, settings, now, http_sources) if http_sources else {}
    finally:
        _SHOP = None
        gc.unfreeze()
    with StateStore(settings.state_path) as state:  # every file is durable: now the cursors move
        for name, window in windows.items():
            state.set_cursor(SOURCE, name, iso(window.end))
    return {
        "records": {**rows, **http_rows},
        "seconds": {
            "load_shop": round(loaded, 1),
            "http": round(http_seconds, 1),
            "total": round(time.perf_counter() - clock, 1),
        },
        "jobs": len(jobs),
        "workers": workers,
    }
