#!/usr/bin/env bash
# run_ci_tests.sh -- the local validation script: copy it into your dbt repository
# (e.g. scripts/run_ci_tests.sh) and run it before you push.
#
#   scripts/run_ci_tests.sh            # static layers (seconds, no warehouse)
#   scripts/run_ci_tests.sh --full     # + dbt build --empty, data-quality gate, baselines
#   scripts/run_ci_tests.sh --layers contracts,data-quality --fail-fast
#
# Every argument goes to `bulwark ci` (see `bulwark ci --help`). Settings come from
# the repository itself: bulwark.yml / [tool.bulwark] (ci.layers, ci.main_branch,
# ci.target, baselines.*, data_quality.*), and these environment variables:
#
#   BULWARK            the bulwark executable (default: bulwark on PATH, else .venv/bin/bulwark)
#   BULWARK_PROJECT    dbt project directory (default: every dbt_project.yml found)
#   BULWARK_TARGET     a target of your own profiles.yml for the dbt layers
#                      (default: your profile when configured, else embedded DuckDB)
#
# Exit status: 0 when every layer passed, 1 when one failed (or was skipped),
# 2 on a usage error.
set -euo pipefail

cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"

bulwark="${BULWARK:-}"
if [ -z "$bulwark" ]; then
  if command -v bulwark >/dev/null 2>&1; then
    bulwark=bulwark
  elif [ -x .venv/bin/bulwark ]; then
    bulwark=.venv/bin/bulwark
  else
    echo "run_ci_tests.sh: bulwark not found; pip install 'dbt-bulwark[dbt]'" >&2
    exit 2
  fi
fi

args=()
if [ -n "${BULWARK_PROJECT:-}" ]; then
  args+=(--project-dir "$BULWARK_PROJECT")
fi
if [ -n "${BULWARK_TARGET:-}" ]; then
  args+=(--target "$BULWARK_TARGET")
fi

exec "$bulwark" ci "${args[@]}" "$@"
