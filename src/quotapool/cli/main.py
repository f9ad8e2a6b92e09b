"""The `quotapool` command."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from typer.core import TyperGroup

from quotapool import __version__
from quotapool.cli.accounts import app as accounts_app
from quotapool.cli.audit import audit
from quotapool.cli.common import clock, console, err, escape
from quotapool.cli.config import app as config_app
from quotapool.cli.config import init
from quotapool.cli.forecast import forecast
from quotapool.cli.keys import admin_app
from quotapool.cli.keys import app as keys_app
from quotapool.cli.simulate import simulate
from quotapool.cli.usage import usage

if TYPE_CHECKING:  # the rest is imported by the commands that need it: a quick --help
    from quotapool.config import Settings


class _Explained(TyperGroup):
    """Every command: a Problem (its message says what to do) is one line and its exit code."""

    def invoke(self, ctx: Any) -> Any:  # (a click Context; typer vendors click)
        from quotapool.problem import Problem

        try:
            return super().invoke(ctx)
        except Problem as exc:
            if _debug():
                raise
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Explained,
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: fast to start, reads in any terminal
    help="One endpoint in front of all your LLM credentials (ChatGPT/Codex accounts, "
    "OpenAI-compatible and Anthropic keys): each request goes to one with quota left, and "
    "fails over before the first byte when one runs dry.\n\n"
    "Start with `quotapool init` and `quotapool serve` (dashboard at /quotapool/); "
    "`quotapool demo` shows it on fake accounts.",
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_app, name="admin")
app.add_typer(config_app, name="config")
app.command()(init)
app.command()(simulate)
app.command()(forecast)
app.command()(audit)
app.command()(usage)
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file (default: $QUOTAPOOL_HOME/quotapool.toml)"),
]


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _version(show: bool) -> None:
    if show:
        typer.echo(f"quotapool {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version"),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show the traceback of a failure (anywhere on the command line)"
        ),
    ] = False,
) -> None:
    """One endpoint in front of many LLM credentials."""


def _debug() -> bool:
    return "--debug" in sys.argv[1:] or os.environ.get("QUOTAPOOL_DEBUG", "") not in ("", "0")


def run() -> None:
    """The `quotapool` command: a failure is one line saying what and what to do, with an exit
    code ≠ 0; the traceback only with `--debug` (or QUOTAPOOL_DEBUG=1)."""
    try:
        app(args=[a for a in sys.argv[1:] if a != "--debug"], prog_name="quotapool")
    except Exception as exc:
        if _debug():
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        err.print(
            f"[red]error:[/red] {escape(type(exc).__name__)}: {escape(first)} — quotapool did not "
            "expect this: run the command again with --debug and report the traceback.",
            soft_wrap=True,
        )
        sys.exit(1)


def _settings(config: Path | None, **flags: Any) -> Settings:
    from quotapool.config import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    # Command-line flags beat the file and the environment.
    return settings.model_copy(update={k: v for k, v in flags.items() if v is not None})


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level != "debug":  # a quiet start: no line per migration step
        logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port [default: 8410]")] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            help="info: a line per request and per credential going out or coming back "
            "[default: info]"
        ),
    ] = None,
    config: ConfigOption = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the port, sharing the pool through Redis (needs redis_url)",
        ),
    ] = 1,
) -> None:
    """Run the proxy (request log in SQLite under $QUOTAPOOL_HOME unless configured)."""
    from quotapool.server import serve as serve_pool

    settings = _settings(
        config, host=host, port=port, log_level=log_level.value if log_level else None
    )
    _logging(settings.log_level)
    if not settings.credentials:
        console.print(
            "[yellow]No credentials configured[/yellow]: add "
            + escape(f"[[credentials]] entries to {settings.resolved_home / 'quotapool.toml'}")
            + ", or accounts with `quotapool accounts` (or try `quotapool demo`).",
            soft_wrap=True,
        )
    serve_pool(  # what stops it (a busy port, a database it cannot open) is a Problem
        settings,
        config,
        lambda url, local: console.print(
            f"quotapool listening on {url} (dashboard: {local}/quotapool/)"
            + (f", {workers} workers" if workers > 1 else ""),
            markup=False,
            soft_wrap=True,
        ),
        workers,
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the proxy")] = 8410,
    tour: Annotated[bool, typer.Option(help="Send a few requests and show where they went")] = True,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
) -> None:
    """Start a fake upstream with fake accounts and the proxy in front of it."""
    from quotapool.cli.demo import run_demo

    _logging("warning")
    run_demo(console.real(), port=port, tour=tour, duration=duration)


def _fmt_time(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _tokens(row: dict[str, Any]) -> str:
    if row["input_tokens"] is None:
        return "-"
    return f"{row['input_tokens']}/{row['output_tokens']} ({row['cached_tokens']} cached)"


def _model(row: dict[str, Any]) -> str:
    """The model asked for, and the one sent when a profile, a credential or a fallback
    changed it."""
    asked, sent = row["model"], row["sent_model"]
    if not asked:
        return sent or "-"
    fell_back = " (fallback)" if row.get("fallback") else ""
    return f"{asked} → {sent}{fell_back}" if sent and sent != asked else asked


def _scores(decision: dict[str, Any]) -> str:
    if "scores" not in decision:
        return ""
    values = ", ".join(f"{name}={value:g}" for name, value in decision["scores"].items())
    return f"; {decision['ranked_by']}: {values}"


@app.command()
def requests(
    last: Annotated[int, typer.Option("--last", "-n", help="How many")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    wide: Annotated[
        bool, typer.Option("--wide", "-w", help="Every detail and the whole explanation")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones")] = False,
    credential: Annotated[str | None, typer.Option(help="Only those served by it")] = None,
    key: Annotated[str | None, typer.Option(help="Only those of this client key")] = None,
    status: Annotated[int | None, typer.Option(help="Only with this HTTP status")] = None,
    since: Annotated[str | None, typer.Option(help="Only the last 10m, 2h, 1d…")] = None,
    config: ConfigOption = None,
) -> None:
    """Recent requests: where each went, what it cost, and why it was routed there.

    Two lines each (the reason cut to the terminal's width); --wide for every detail and the
    whole explanation, --json for everything."""
    from quotapool.domain.client import parse_duration
    from quotapool.store.request_log import recent
    from quotapool.store.sql.db import make_engine, migrate

    settings = _settings(config)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    try:
        after = clock.now() - parse_duration(since) if since else None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    filters: dict[str, Any] = {
        "credential": credential,
        "client_key": key,
        "status": status,
        "since": after,
    }
    rows = recent(engine, last, **filters)
    _print_requests(rows, as_json, wide, title=True)
    seen = max((row["id"] for row in rows), default=0)
    while follow:  # until interrupted
        sys.stdout.flush()  # (a pipe would otherwise hold the lines back)
        time.sleep(1.0)
        rows = recent(engine, 1000, after_id=seen, **filters)
        _print_requests(rows, as_json, wide, title=False)
        seen = max((row["id"] for row in rows), default=seen)


def _print_requests(rows: list[dict[str, Any]], as_json: bool, wide: bool, title: bool) -> None:
    if as_json:
        for row in rows:
            row["decision"] = orjson.loads(row["decision"]) if row["decision"] else None
            typer.echo(orjson.dumps(row).decode())
        return
    if not rows:
        if title:
            console.print("no requests yet")
        return
    from rich.text import Text

    out = console.real()
    for row in rows:
        out.print(_headline(row), markup=False, highlight=False, no_wrap=True, crop=True)
        if not wide:  # the reason on its own line, cut to the terminal's width
            out.print(Text(f"  {_brief(row)}"), no_wrap=True, overflow="ellipsis", highlight=False)
            continue
        for paragraph in (_details(row), *_why_lines(row)):
            for line in textwrap.wrap(paragraph, max(20, out.width - 2), break_on_hyphens=False):
                out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _headline(row: dict[str, Any]) -> str:
    """`03:46:46  200  gpt-5.5 → carol (2 tries)  3 ms  key laptop`."""
    served = row["credential"] or "-"
    tries = f" ({row['attempts']} tries)" if row["attempts"] > 1 else ""
    total = f"  {row['latency_ms']:.0f} ms" if row["latency_ms"] is not None else ""
    key = f"  key {row['client_key']}" if row["client_key"] else ""
    warm = "  warmup" if row["warmup"] else ""
    return f"{_fmt_time(row['at'])}  {row['status']}  {_model(row)} → {served}{tries}{total}{key}{warm}"


def _details(row: dict[str, Any]) -> str:
    scenario = " · ".join(f"{what} {row[what]}" for what in ("profile", "scenario") if row[what])
    ttfb = f"ttfb {row['ttfb_ms']:.1f} ms" if row["ttfb_ms"] is not None else ""
    parts = [row["path"], scenario, f"tokens {_tokens(row)}" if row["input_tokens"] else "", ttfb]
    return " · ".join(p for p in parts if p)


def _error_text(row: dict[str, Any]) -> str:
    """The message of an error row (its JSON body's), not the body itself."""
    text = str(row["error"])
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(text)
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict) and isinstance(message := inner.get("message"), str):
                return message
            if isinstance(detail := body.get("detail"), str):
                return detail
    return text.replace("\n", " ")


def _brief(row: dict[str, Any]) -> str:
    """Why it went where it went (or why it failed), in one line: a failover first."""
    decisions = orjson.loads(row["decision"]) if row["decision"] else []
    failed = _failed_over(decisions)
    if row["status"] >= 400 and row["error"]:
        return failed + _error_text(row)
    if not decisions:
        return "-"
    last = decisions[-1]
    return f"{failed}{last['strategy']}: {last['reason']}"


def _failed_over(decisions: list[dict[str, Any]]) -> str:
    """`alice failed (429 usage_limit_reached), failed over; ` for each credential left."""
    if len(decisions) < 2:
        return ""
    reasons = {
        e["credential"]: e["reason"].removeprefix("already tried for this request: ")
        for e in decisions[-1]["excluded"]
    }
    left = [d["selected"] for d in decisions[:-1] if d["selected"]]
    return "".join(f"{name} failed ({reasons.get(name, '?')}), failed over; " for name in left)


def _omitted(decision: dict[str, Any]) -> str:
    """What a decision over a large pool did not log (`Record.row` keeps a few of each)."""
    if not (omitted := decision.get("omitted")):
        return ""
    return (
        f" · not logged: {omitted['candidates']} more candidate(s), "
        f"{omitted['excluded']} more exclusion(s)"
    )


def _why_lines(row: dict[str, Any]) -> list[str]:
    """Every decision in full, one paragraph each (`--wide`)."""
    decisions = orjson.loads(row["decision"]) if row["decision"] else []
    lines = []
    for decision in decisions:
        if decision["selected"]:
            skipped = "; ".join(f"{e['credential']}: {e['reason']}" for e in decision["excluded"])
            line = f"{decision['strategy']} → {decision['selected']}: {decision['reason']}"
            lines.append(
                line
                + _scores(decision)
                + (f" · not eligible: {skipped}" if skipped else "")
                + _omitted(decision)
            )
        else:
            lines.append(f"rejected: {decision['reason']}")
    if row["status"] >= 400 and row["error"]:
        lines.append(f"error: {_error_text(row)}")
    return lines


if __name__ == "__main__":
    run()
