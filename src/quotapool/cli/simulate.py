"""`quotapool simulate`: which routing wastes the least quota, on a simulated pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from quotapool.cli.common import ConfigOption, console, err, escape, fail

if TYPE_CHECKING:
    from rich.progress import TaskID

    from quotapool.simulate.pool import PoolSpec
    from quotapool.simulate.run import Result, Setting
    from quotapool.simulate.workload import Workload

COMPARED = (
    "expiry_weighted,capacity_weighted,round_robin,fill_first,sequential,sequential+warmup,"
    "reset_drain"
)


def simulate(
    pool: Annotated[
        Path | None, typer.Option(help="Pool file (TOML); default: a team of --accounts")
    ] = None,
    accounts: Annotated[int, typer.Option(help="Accounts of the built-in team", min=1)] = 20,
    workload: Annotated[
        str,
        typer.Option(help="steady, office, bursty, parallel, a comma-separated list, or all"),
    ] = "steady",
    from_log: Annotated[
        bool, typer.Option("--from-log", help="Replay the request log (times and sizes)")
    ] = False,
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma-separated; modifiers are added with + (prefer_earlier_reset, "
            "no_budget_safe, and warmup for fill_first or sequential)"
        ),
    ] = COMPARED,
    days: Annotated[float, typer.Option(help="Simulated days", min=0.1, max=60)] = 7.0,
    seed: Annotated[int, typer.Option(help="Same seed, same results")] = 1,
    load: Annotated[
        float,
        typer.Option(help="Share of the pool's weekly credits the workload asks for", min=0.01),
    ] = 0.9,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row")] = False,
    markdown: Annotated[bool, typer.Option(help="The table as Markdown")] = False,
    chart: Annotated[
        Path | None, typer.Option(help="Write each account's weekly window over time (.html, .svg)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the real routing engine on a virtual clock against a simulated pool and compare
    strategies: quota that expired unused, requests blocked, conversations moved."""
    import orjson

    from quotapool.simulate import chart as charts
    from quotapool.simulate.report import markdown as as_markdown
    from quotapool.simulate.report import verdict
    from quotapool.simulate.run import Setting

    if chart is not None and chart.suffix not in (".html", ".svg"):
        raise fail(f"--chart writes .html or .svg, not {chart.suffix or 'a file without one'}", 2)
    try:
        settings = [Setting.parse(s) for s in strategies.split(",") if s.strip()]
        spec = _pool(pool, accounts)
        if any(s.fallback for s in settings) and not spec.fallback:
            raise ValueError(
                "+fallback rows need a pool file that names the fallback models and keys that "
                'serve them: fallback = ["claude-sonnet-4-5"] and [[keys]] with models = [...]'
            )
        workloads = _workloads(workload, from_log, config, spec, seed, days, load)
    except (ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    results = _compare(spec, workloads, settings, seed, days, quiet=as_json)
    summary = [verdict([r for r in results if r.workload == each.name]) for each in workloads]
    if chart is not None:
        text = charts.page(results, summary) if chart.suffix == ".html" else charts.svg(results)
        chart.write_text(text)
    if as_json:
        typer.echo(orjson.dumps([r.row() for r in results]).decode())
    elif markdown:
        typer.echo(as_markdown(results))
    else:
        _show(results, workloads, summary, chart)


def _compare(
    spec: PoolSpec,
    workloads: list[Workload],
    settings: list[Setting],
    seed: int,
    days: float,
    *,
    quiet: bool,
) -> list[Result]:
    """Every setting on every workload, with a progress bar (on stderr) per run."""
    from rich.progress import Progress

    from quotapool.simulate.run import simulate as run

    results: list[Result] = []
    with Progress(console=err.real(), transient=True, disable=quiet) as progress:
        for each in workloads:
            for setting in settings:
                total = len(each.requests) or 1
                task = progress.add_task(f"{each.name}: {setting.label}", total=total)

                def advanced(n: int, task: TaskID = task) -> None:
                    progress.update(task, completed=n)

                results.append(run(spec, each, setting, seed=seed, days=days, progress=advanced))
                progress.update(task, completed=total)
    return results


def _show(
    results: list[Result], workloads: list[Workload], summary: list[str], chart: Path | None
) -> None:
    from rich.table import Table

    from quotapool.simulate.report import cells, columns

    shown = columns(results)
    for each in workloads:
        table = Table(title=f"{each.name}: {each.describe}")
        for title, _ in shown:
            if title == "strategy":
                table.add_column(title, no_wrap=True)
            else:
                table.add_column(title, justify="right")
        for result in results:
            if result.workload == each.name:
                table.add_row(*cells(result, shown))
        console.print(table)
    for line in summary:
        console.print(escape(line))
    if chart is not None:
        console.print(f"chart: {escape(str(chart))}")


def _pool(path: Path | None, accounts: int) -> PoolSpec:
    from quotapool.simulate.pool import load_pool, team_pool

    return team_pool(accounts) if path is None else load_pool(path)


def _workloads(
    names: str,
    from_log: bool,
    config: Path | None,
    spec: PoolSpec,
    seed: int,
    days: float,
    load: float,
) -> list[Workload]:
    from quotapool.simulate.workload import WORKLOADS, built_in
    from quotapool.simulate.workload import from_log as recorded

    if from_log:
        from quotapool.config import ConfigError, load_settings
        from quotapool.store.sql.db import make_engine

        try:
            settings = load_settings(config)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        url = settings.resolved_database_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            raise ValueError(f"no request log yet at {url.removeprefix('sqlite:///')}: serve first")
        engine = make_engine(url)
        try:
            return [recorded(engine, days, spec.weekly_credits * load)]
        finally:
            engine.dispose()
    chosen = list(WORKLOADS) if names == "all" else [n.strip() for n in names.split(",")]
    size = len(spec.accounts) + len(spec.keys)
    return [built_in(n, seed, days, size, spec.weekly_credits * load) for n in chosen]
