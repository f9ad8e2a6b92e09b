#!/usr/bin/env bash
# One command: installs what the benchmark needs (the package, wrk) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
if [[ " $* " == *" --egress "* ]]; then  # the proxies an egress run goes through
  for tool in microsocks tinyproxy; do
    command -v "$tool" >/dev/null || apt-get install -y -q "$tool" >/dev/null
  done
fi
exec .venv/bin/python bench/run.py "$@"
