"""The one entry point: ``python -m bench.run --size quick|full [--only GROUP_OR_STAGE ...]``.

Runs the registered stages (each in its own process), prints their numbers,
merges them into ``bench/results.json`` and re-renders the table in
``bench/README.md``. ``quick`` (~2,000 customers) takes well under a minute;
``full`` generates the large shop once (1M customers, 10M orders, 500 Facebook
ads; ~1 min and ~5 GB) and its raw zone (~70 min) once, cached under ``bench/out/``,
then takes about an hour and peaks at ~10 GB (bench/README.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from bench.harness import Size, load_stages, run, select

SIZES = {
    "quick": Size(
        "quick",
        customers=2_000,
        options={
            "ingest.shopify_days": 90,  # paged orders of the last 90 days: ~1,100 orders, ~270 pages
            "ingest.amazon_days": None,  # all history
            "ingest.facebook_days": 1_095,
            "ingest.replays": 3,
            "ingest.amazon_requests": 100,
            "ingest.shopify_requests": 50,
            # Shopify Plus restores 1,000 points/s; the bucket is the standard 2,000 (Plus: 20,000)
            # so that its head start does not dominate a few seconds' run.
            "ingest.shopify_bucket": 2_000,
            "ingest.shopify_restore": 1_000.0,
            "warehouse.rfm_runs": 10,  # RFM takes milliseconds on 2,000 customers: best of more runs
            "sequences.recipients": 5_000,
            "orchestration.transform_rounds": 1,  # seconds-long transforms: the harness, not the number
        },
    ),
    "full": Size(
        "full",
        customers=1_000_000,
        orders_per_customer=10,
        fb_ads=500,  # 3 years of daily insights for 500 ads: ~400k rows (quick keeps the demo's 41 ads)
        options={
            "ingest.shopify_days": 1,  # ~34,000 orders, ~8,400 pages
            "ingest.amazon_days": 14,  # ~50,000 orders
            "ingest.facebook_days": 1_095,
            "ingest.replays": 2,
            "ingest.amazon_requests": 200,
            "ingest.shopify_requests": 40,
            # The standard plan as Shopify sells it: 2,000 points, 100 points/s.
            "ingest.shopify_bucket": 2_000,
            "ingest.shopify_restore": 100.0,
            "warehouse.rfm_runs": 3,
            "sequences.recipients": 100_000,
        },
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME", help="stage groups or stage names")
    args = parser.parse_args(argv)
    try:
        stages = select(load_stages().values(), args.only)
    except ValueError as exc:
        parser.error(str(exc))
    command = shlex.join(["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])])
    entry = run(SIZES[args.size], stages, command=command)
    failed = [name for name, outcome in entry["stages"].items() if outcome.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
