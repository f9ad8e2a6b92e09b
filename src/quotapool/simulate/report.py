"""What a comparison says: a table row per setting, and one sentence per workload naming the
winner on expiring quota and on blocked clients, and by how much."""

from __future__ import annotations

from collections.abc import Sequence

from quotapool.simulate.run import Result


def verdict(results: Sequence[Result]) -> str:
    """One sentence on the results of one workload."""
    if len(results) < 2:
        only = results[0]
        return (
            f"{only.setting} let {only.expired_weekly_pct:.1f} % of the weekly quota expire "
            f"unused and blocked {only.blocked_requests:,} requests."
        )
    by_waste = sorted(results, key=lambda r: (r.expired_weekly_pct, r.blocked_requests))
    best, second = by_waste[0], by_waste[1]
    worst = by_waste[-1]
    if _same(best, worst):
        said = (
            f"On {best.workload}, every setting let {best.expired_weekly_pct:.1f} % of the weekly "
            "quota expire (a run shorter than a week may see few weekly resets)"
        )
    elif _same(best, second):
        tied = [r.setting for r in by_waste if _same(r, best)]
        said = (
            f"On {best.workload}, {' and '.join(tied)} tie for the least weekly quota expired "
            f"({best.expired_weekly_pct:.1f} %, vs {worst.expired_weekly_pct:.1f} % for "
            f"{worst.setting})"
        )
    else:
        said = (
            f"On {best.workload}, {best.setting} lets the least weekly quota expire: "
            f"{best.expired_weekly_pct:.1f} % vs {second.expired_weekly_pct:.1f} % for "
            f"{second.setting} (next best) and {worst.expired_weekly_pct:.1f} % for "
            f"{worst.setting}"
        )
    fewest = min(results, key=lambda r: (r.blocked_requests, r.blocked_seconds))
    most = max(results, key=lambda r: (r.blocked_requests, r.blocked_seconds))
    if most.blocked_requests == 0:
        return said + "; no setting blocked a client."
    if fewest is best or fewest.blocked_requests == best.blocked_requests:
        return (
            said
            + f"; {best.setting} blocks {best.blocked_requests:,} requests, where {most.setting} "
            f"blocks {most.blocked_requests:,}."
        )
    return (
        said + f"; {fewest.setting} blocks the fewest requests ({fewest.blocked_requests:,}, "
        f"{best.setting} {best.blocked_requests:,})."
    )


def _same(a: Result, b: Result) -> bool:
    """Equal as shown (to a tenth of a percent)."""
    return round(a.expired_weekly_pct, 1) == round(b.expired_weekly_pct, 1)


COLUMNS = (
    ("strategy", "setting"),
    ("expired wk %", "expired_weekly_pct"),
    ("expired 5h %", "expired_five_hour_pct"),
    ("blocked", "blocked_requests"),
    ("blocked s", "blocked_seconds"),
    ("cache breaks", "affinity_breaks"),
    ("failovers", "failovers"),
    ("spread %", "spread_pct"),
    ("requests", "requests"),
)


FELL_BACK = ("fell back", "fell_back")


def columns(results: Sequence[Result]) -> tuple[tuple[str, str], ...]:
    """The table's columns: with a `+fallback` row, also the requests served by a fallback."""
    if any("+fallback" in r.setting for r in results):
        return (*COLUMNS[:4], FELL_BACK, *COLUMNS[4:])
    return COLUMNS


def cells(result: Result, shown: Sequence[tuple[str, str]] = COLUMNS) -> list[str]:
    made = []
    for _, attribute in shown:
        value = getattr(result, attribute)
        if isinstance(value, float):
            made.append(f"{value:,.1f}")
        elif isinstance(value, int):
            made.append(f"{value:,}")
        else:
            made.append(str(value))
    return made


def markdown(results: Sequence[Result]) -> str:
    """The table as Markdown (for a README), one block per workload."""
    lines = []
    for workload in dict.fromkeys(r.workload for r in results):
        rows = [r for r in results if r.workload == workload]
        lines += [f"**{workload}** — {verdict(rows)}", ""]
        shown = columns(rows)
        lines.append("| " + " | ".join(title for title, _ in shown) + " |")
        lines.append("|" + "---|" * len(shown))
        lines += ["| " + " | ".join(cells(r, shown)) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)
