"""``bench/results.json`` and its rendering: console lines and the Markdown table in ``bench/README.md``.

``results.json`` holds one entry per size (``quick``, ``full``): the machine, the
date and command of the latest run, the shop, and every stage's outcome (metrics,
details, time, peak RSS, its own date and command). A run replaces the stages it
ran and keeps the others, so ``--only ingest`` does not erase later stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SHOWN_COUNTS = ("customers", "orders", "amazon_orders", "fb_insights")


def load_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except ValueError:
        return {}  # a hand-mangled file must not block a fresh run; the run rewrites it
    return loaded if isinstance(loaded, dict) else {}


def merge_run(results: dict[str, Any], size: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``results`` with this run's ``entry`` for ``size``; stages the run did not touch are kept."""
    previous = results.get(size, {})
    stages = {**previous.get("stages", {}), **entry["stages"]}
    return {**results, size: {**entry, "shop": entry.get("shop") or previous.get("shop", {}), "stages": stages}}


def save_results(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def number(value: float | None) -> str:
    """Three significant digits, thousands separated: 0.952, 14.5, 68,838."""
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def target(metric: dict[str, Any]) -> str:
    if metric.get("target") is None:
        return "–"
    sign = "≥" if metric["better"] == "higher" else "≤"
    return f"{sign} {number(metric['target'])} {metric['unit']}".strip()


def ratio(metric: dict[str, Any]) -> str:
    if metric.get("ratio") is None:
        return "–"
    return f"{metric['ratio']:.2f} ({metric['ratio_of']})"


def meets(metric: dict[str, Any]) -> str:
    return {True: "yes", False: "**no**", None: "–"}[metric.get("meets")]


def summary_lines(name: str, outcome: dict[str, Any]) -> str:
    """What the console shows for one finished stage."""
    lines = [f"  {name}: {outcome['seconds']:.1f} s, peak RSS {outcome['peak_rss_mb']:,.0f} MB"]
    for m in outcome["metrics"]:
        shown = f"{number(m['value'])} {m['unit']}".strip()
        lines.append(f"    {m['name']}: {shown}  target {target(m)}  ratio {ratio(m)}  meets {meets(m)}")
    if outcome.get("error"):
        lines.append("    FAILED:\n      " + outcome["error"].strip().replace("\n", "\n      "))
    return "\n".join(lines)


def _metric_rows(name: str, outcome: dict[str, Any]) -> list[str]:
    shown = f"`{name}`" + (" (small shop)" if outcome.get("shop") == "small" else "")
    stage_cells = [shown, f"{outcome['seconds']:.1f} s", f"{outcome['peak_rss_mb']:,.0f} MB"]
    if outcome.get("error"):
        last = outcome["error"].strip().splitlines()[-1].replace("|", "/")
        return [f"| {stage_cells[0]} | failed: {last} | – | – | – | – | {stage_cells[1]} | {stage_cells[2]} |"]
    rows = []
    for index, m in enumerate(outcome["metrics"]):
        first, time_, rss = stage_cells if index == 0 else ("", "", "")
        value = f"{number(m['value'])} {m['unit']}".strip()
        rows.append(f"| {first} | {m['name']} | {value} | {target(m)} | {ratio(m)} | {meets(m)} | {time_} | {rss} |")
    return rows


def render_tables(results: dict[str, Any]) -> str:
    """Markdown: per size, the machine, date and command, then one row per metric."""
    parts: list[str] = []
    for size in sorted(results, key=lambda n: (n != "quick", n != "full", n)):
        run = results[size]
        machine, counts = run["machine"], run.get("shop", {}).get("row_counts", {})
        shop = ", ".join(f"{counts[k]:,} {k.replace('_', ' ')}" for k in SHOWN_COUNTS if k in counts)
        load = machine.get("load_average")
        parts += [
            f"### {size}" + (f": {shop}" if shop else ""),
            "",
            f"Machine: {machine['cores']} cores, {machine['memory_gb']} GB, {machine['cpu_model']}, "
            f"Python {machine['python']}" + (f", load average {load} at the start" if load is not None else "") + ".",
            f"Run {run['date']}: `{run['command']}`.",
            "",
            "| stage | measure | value | target | ratio | meets | stage time | peak RSS |",
            "|---|---|--:|--:|--:|:-:|--:|--:|",
        ]
        older = []
        for name, outcome in run["stages"].items():
            parts += _metric_rows(name, outcome)
            if outcome.get("date") != run["date"]:
                older.append(f"`{name}` comes from an earlier run ({outcome.get('date')}: `{outcome.get('command')}`).")
        parts += ["", *older, ""] if older else [""]
    return "\n".join(parts).rstrip() + "\n"


def write_readme(path: Path, tables: str) -> None:
    """Replace the generated section of the README (between the markers), keeping the prose around it."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{tables}{END}{tail}")
