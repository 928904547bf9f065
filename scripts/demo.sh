#!/usr/bin/env bash
# Quickstart, command 1: install sre-graph into .venv (first run only) and investigate the bundled demo incident.
# Offline: no model, no cluster, no network beyond PyPI for the first install.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/sre-graph ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/sre-graph demo "$@"
