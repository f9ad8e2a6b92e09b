"""`python -m quotapool`: the `quotapool` command."""

from quotapool.cli.main import run

run()
