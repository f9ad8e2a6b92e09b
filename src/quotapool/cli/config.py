"""`quotapool config check` and `quotapool init`: a configuration that is valid before the
server starts."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import orjson
import typer

from quotapool.cli.common import ConfigOption, err, fail

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Check the configuration.")


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the configuration and print what is in effect (secrets masked)."""
    from quotapool.config import ConfigError, load_settings, resolved_config_path

    try:
        settings = load_settings(config)
        for credential in settings.credentials:
            credential.secret()  # an api_key_env that is not set fails here, not at start
    except ConfigError as exc:
        raise fail(str(exc), code=2) from None
    path = resolved_config_path(config)
    source = str(path) if path.exists() else "no file: defaults and environment"
    err.print(f"configuration OK ({source})", markup=False)
    effective = settings.model_dump(mode="json")
    for name, value in effective.items():  # a database or Redis URL may carry a password
        if name.endswith("_url") and isinstance(value, str):
            effective[name] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
    typer.echo(orjson.dumps(effective, option=orjson.OPT_INDENT_2))


def init(
    path: Annotated[
        Path | None,
        typer.Argument(help="Where to write it (default: $QUOTAPOOL_HOME/quotapool.toml)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a file that exists")] = False,
) -> None:
    """Write a commented sample configuration to start from."""
    from quotapool.config import resolved_config_path

    target = path or resolved_config_path(None)
    if target.exists() and not force:
        raise fail(f"{target} exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(files("quotapool").joinpath("sample.toml").read_text())
    err.print(f"wrote {target}; edit it, then run `quotapool config check`", markup=False)
