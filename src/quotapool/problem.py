"""A failure quotapool explains: its message says what happened and what to do, so the command
line shows it as one line (the traceback only with `--debug`)."""

from __future__ import annotations


class Problem(Exception):
    exit_code = 1
