"""The soak's world: a demo shop whose abandoned carts are due now, and Hearth two days behind it.

:func:`make_shop` generates a small shop ending a few minutes before the wall clock (every
record is then inside the next ingestion window) and moves every Shopify customer to the
demo location whose local time is nearest mid-afternoon, so the send window is open for
them whatever hour the test runs (``send`` plans with the wall clock).

:func:`land_baseline` is the state before the soak: every stream extracted up to ``cut``
(cursors there), the warehouse built and a passed gate. The soak's own runs then have
everything after ``cut`` to ingest, model and email.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from flows.sources import land_every_stream
from hearth.config import Settings
from hearth.quality import run_gate
from sandbox.generator import generate_shop
from sandbox.generator._base import LOCATIONS
from sandbox.shop.tables import read_table, write_table
from tests.integration.warehouse_fixture import dbt

REPO = Path(__file__).resolve().parents[2]
MID_AFTERNOON = 14.5  # the middle of the sequences' 08:00–21:00 send window, in local hours


def daytime_location(now: datetime) -> tuple[str, str | None, str, str]:
    """The demo location (country, province, city, IANA zone) whose local time is nearest 14:30 at ``now``.

    The demo locations span UTC-8 to UTC+10 with no gap over 7 hours, so the chosen one is
    always within 3.5 h of 14:30: the send window stays open for hours after ``now``.
    """

    def distance(zone: str) -> float:
        local = now.astimezone(ZoneInfo(zone))
        return abs(local.hour + local.minute / 60 - MID_AFTERNOON)

    country, province, city, zone = min(
        ((c, p, city, z) for c, p, city, z, *_ in LOCATIONS), key=lambda x: distance(x[3])
    )
    return country, province, city, zone


def make_shop(shop_dir: Path, *, now: datetime, seed: int, customers: int) -> dict:
    """Generate the demo shop up to ``now`` and put every Shopify customer in today's daytime location."""
    truth = generate_shop(shop_dir, seed=seed, customers=customers, now=now)
    country, province, city, _ = daytime_location(datetime.now(UTC))
    table = read_table(shop_dir, "customers")
    for name, value in (("country_code", country), ("province_code", province), ("city", city)):
        column = pa.array([value] * len(table), type=table.schema.field(name).type)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    write_table(shop_dir, "customers", table)
    return truth


def land_baseline(data_dir: Path, env: Mapping[str, str], cut: datetime) -> None:
    """Ingest every stream up to ``cut``, build the warehouse now and pass the gate.

    The state of a shop whose ingestion stopped at ``cut`` while its builds went on: the
    soak's runs catch up with everything after ``cut``. Plain connectors and a plain
    ``dbt build`` (no Prefect): this is set-up, not under test.

    Raises:
        RuntimeError: dbt failed or the gate did not pass.
    """
    settings = Settings.from_env({**env, "HEARTH_DATA_DIR": str(data_dir)}, dotenv=False)
    land_every_stream(settings, now=cut)
    dbt(data_dir, "build", env=env)
    gate = run_gate(settings)
    if not gate.passed:
        raise RuntimeError(f"the quality gate failed on the baseline warehouse: {gate.failures[:5]}")
