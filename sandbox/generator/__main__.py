"""Command line: ``python -m sandbox.generator --out DIR [--seed 42] [--customers 2000] …``."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from sandbox.generator import generate_shop


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--now {text!r} is not ISO 8601, e.g. 2026-11-24T02:00:00Z") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.generator", description="Generate the demo shop.")
    parser.add_argument("--out", type=Path, required=True, help="shop directory to write the tables into")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--customers", type=int, default=2000, help="Shopify persons (Amazon buyers come on top)")
    parser.add_argument("--now", type=_timestamp, default=None, help="end of the period (default: this UTC hour)")
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--orders-per-customer", type=float, default=None, help="e.g. 10 for a benchmark")
    parser.add_argument("--fb-ads", type=int, default=None, help="Facebook ads, e.g. 500 for a benchmark (default ~41)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        truth = generate_shop(
            args.out,
            seed=args.seed,
            customers=args.customers,
            now=args.now,
            years=args.years,
            orders_per_customer=args.orders_per_customer,
            fb_ads=args.fb_ads,
        )
    except ValueError as exc:  # an argument out of range: its message names it (nothing was written)
        parser.error(str(exc))
    elapsed = time.perf_counter() - started
    totals, counts = truth["totals"], truth["row_counts"]
    print(f"demo shop in {args.out} ({elapsed:.1f} s): seed {truth['seed']}, {truth['start']} → {truth['now']}")
    print(
        f"  persons {counts['persons']:,} · customer records {counts['customers']:,} · "
        f"orders {counts['orders']:,} ({totals['shopify_orders_per_customer']} per customer) · "
        f"lines {counts['order_lines']:,}"
    )
    print(
        f"  checkouts {counts['checkouts']:,} (recovered {truth['checkouts']['recovered']:,}, "
        f"open with email in the last 72 h {truth['checkouts']['open_with_email_last_72h']:,}) · "
        f"amazon orders {counts['amazon_orders']:,} · fb ads {counts['fb_ads']:,} "
        f"({counts['fb_insights']:,} insight rows)"
    )
    print(
        f"  revenue ${totals['total_revenue_cents'] / 100:,.2f} "
        f"(shopify ${totals['shopify_revenue_cents'] / 100:,.2f}, amazon ${totals['amazon_revenue_cents'] / 100:,.2f})"
        f" · fb spend ${totals['fb_spend_cents'] / 100:,.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
