"""Each account's weekly window over the run, per setting and workload: one SVG (a panel per
run), or a self-contained HTML page around it. A line that drops to 0 is a reset; how high it
was just before is what that reset did not waste."""

from __future__ import annotations

import html
from collections.abc import Sequence

from quotapool.simulate.run import Result

PANEL_W, PANEL_H, PAD = 420, 150, 34
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
)  # fmt: skip


def svg(results: Sequence[Result]) -> str:
    workloads = list(dict.fromkeys(r.workload for r in results))
    settings = list(dict.fromkeys(r.setting for r in results))
    width = PAD + len(workloads) * (PANEL_W + PAD)
    height = PAD + len(settings) * (PANEL_H + PAD * 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for result in results:
        x = PAD + workloads.index(result.workload) * (PANEL_W + PAD)
        y = PAD * 2 + settings.index(result.setting) * (PANEL_H + PAD * 2)
        parts.append(_panel(result, x, y))
    parts.append("</svg>")
    return "\n".join(parts)


def _panel(result: Result, x: float, y: float) -> str:
    title = (
        f"{result.setting} · {result.workload}: {result.expired_weekly_pct:.1f} % expired, "
        f"{result.blocked_requests:,} blocked"
    )
    parts = [
        f'<text x="{x}" y="{y - 8}" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{x}" y="{y}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>',
        f'<text x="{x - 4}" y="{y + 4}" text-anchor="end">100%</text>',
        f'<text x="{x - 4}" y="{y + PANEL_H}" text-anchor="end">0</text>',
    ]
    timeline = result.timeline
    if len(timeline) < 2:
        return "\n".join(parts)
    hours = timeline[-1][0] or 1.0
    parts.append(
        f'<text x="{x + PANEL_W}" y="{y + PANEL_H + 12}" text-anchor="end">{hours:.0f} h</text>'
    )
    accounts = list(timeline[0][1])
    for n, account in enumerate(accounts):
        points = " ".join(  # whole pixels: a chart of a week stays small
            f"{x + PANEL_W * at / hours:.0f},"
            f"{y + PANEL_H * (1 - min(100.0, usage[account][1]) / 100):.0f}"
            for at, usage in timeline
        )
        colour = COLOURS[n % len(COLOURS)]
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1" '
            f'opacity="0.8"><title>{html.escape(account)}</title></polyline>'
        )
    return "\n".join(parts)


def page(results: Sequence[Result], summary: Sequence[str]) -> str:
    """A self-contained HTML page: the summary, then the chart (no script, no CDN)."""
    said = "".join(f"<p>{html.escape(line)}</p>" for line in summary)
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        "<title>quotapool simulate</title>"
        '<body style="font-family:sans-serif;margin:2em">'
        "<h1>Weekly window used, per account (%)</h1>"
        f"{said}{svg(results)}</body></html>"
    )
