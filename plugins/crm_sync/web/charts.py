"""The console's pictures, drawn on the server as inline SVG (the product runs air-gapped: no CDN,
no script): this module lays them out, `templates/charts.html.j2` draws them. Each picture is an
image with a title and a description for screen readers, and its numbers are on it and in a table.

- a profile's last runs: writes sent to each side and rows quarantined; and API calls per side;
- a GHL location's calls today against its daily limit, with the reserve runs leave untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

RUNS_CHARTED = 10
WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 18, 40  # room for the axis, the values over the bars, the run labels


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    css: str  # the bar's class: its colour, in charts.html.j2


WRITES = (Series("to_ghl", "written to GHL", "ghl"), Series("to_app", "written to the app", "app"),
          Series("quarantined", "quarantined", "bad"))
CALLS = (Series("ghl", "GHL API calls", "ghl"), Series("app", "app API calls", "app"))


@dataclass
class Chart:
    title: str
    desc: str
    series: tuple[Series, ...]
    columns: list[dict[str, Any]]  # per run: label, name, values
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)


def compact(n: int) -> str:
    """A number short enough to stand over a bar: 950, 12.3k, 1.2M."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def _ceiling(top: int) -> int:
    """A round top for the axis, at least ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return 1
    power = 10 ** math.floor(math.log10(top))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= top)


def bar_chart(title: str, series: tuple[Series, ...], columns: list[dict[str, Any]]) -> Chart:
    """Grouped bars, one group per column (oldest on the left), one bar per series."""
    newest = columns[-1] if columns else None
    desc = (f"{len(columns)} runs, oldest first. Newest ({newest['name']}): "
            + ", ".join(f"{newest['values'][s.key]:,} {s.label}" for s in series) + "."
            if newest else "No run yet.")
    chart = Chart(title, desc, series, columns)
    top = _ceiling(max((c["values"][s.key] for c in columns for s in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / max(len(columns), 1)
    bar = group * 0.8 / len(series)
    for i, column in enumerate(columns):
        x0 = LEFT + i * group + group * 0.1
        chart.labels.append({"x": round(x0 + group * 0.4, 1), "y": HEIGHT - BOTTOM + 14, "text": column["label"]})
        for j, s in enumerate(series):
            value = column["values"][s.key]
            h = plot_h * value / top
            x, y = x0 + j * bar, TOP + plot_h - h
            chart.bars.append({"x": round(x, 1), "y": round(y, 1), "w": round(bar - 1, 1), "h": round(h, 1),
                               "css": s.css, "value": value, "text": compact(value),
                               "title": f"{column['name']}: {value:,} {s.label}"})
    chart.ticks = [{"y": round(TOP + plot_h - plot_h * share, 1), "text": compact(int(top * share))}
                   for share in ((0, 0.5, 1) if top % 2 == 0 else (0, 1))]
    return chart


def _label(run: dict[str, Any], zone: tzinfo) -> str:
    """Short: the day and time the run ended (its report), in the profile's zone; else its state."""
    ended = run.get("generated_at")
    if not ended:
        return "running"
    moment = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    return moment.astimezone(zone).strftime("%m-%d %H:%M") if moment.tzinfo else moment.strftime("%m-%d %H:%M")


def runs_charts(runs: list[dict[str, Any]], zone: tzinfo) -> tuple[Chart, Chart]:
    """A profile's last runs (``runs`` newest first, as crm_sync.pipeline.run_list lists them)."""
    shown = list(reversed(runs[:RUNS_CHARTED]))

    def column(run: dict[str, Any], values: dict[str, int]) -> dict[str, Any]:
        return {"label": _label(run, zone), "name": run["title"], "values": values}

    writes = [column(r, {"to_ghl": r["sides"]["ghl"]["created"] + r["sides"]["ghl"]["updated"],
                         "to_app": r["sides"]["app"]["created"] + r["sides"]["app"]["updated"],
                         "quarantined": r["quarantined"]}) for r in shown]
    calls = [column(r, {side: r["sides"][side]["api_calls"] for side in ("ghl", "app")}) for r in shown]
    return (bar_chart("Writes sent and rows quarantined, last runs", WRITES, writes),
            bar_chart("API calls, last runs", CALLS, calls))


def budget_gauge(location: dict[str, Any], width: int = 480) -> dict[str, Any]:
    """One GHL location's calls today (crm_sync.web.services.ghl_calls_today) as a filled bar, with
    a mark where the reserve begins (runs stop there)."""
    calls, limit, reserve = location["calls"], location["limit"], location["reserve"]
    share = min(calls / limit, 1)
    name = location["location_id"] or location["conn_id"]
    text = f"{calls:,} of {limit:,} calls today ({share:.2%} used)" if share < 0.01 else (
        f"{calls:,} of {limit:,} calls today ({share:.1%} used)")
    return {**location, "name": name, "width": width, "used": max(round(width * share, 1), 1) if calls else 0,
            "stop": round(width * (limit - reserve) / limit, 1), "text": text,
            "desc": f"GHL location {name}: {text}; runs stop {reserve:,} calls before the limit."}
