#!/usr/bin/env bash
# The benchmark of the README (docs/performance.md): the real `mlops` against the AWS emulator
# through the AWS-behaviour layer, at 50 ms a request and on AWS's clock scaled down; prints the
# table, the clock, the machine and its load.
#   scripts/bench.sh            # about 6 minutes on a quiet machine, 3 of them the aws CLI script
#   scripts/bench.sh --quick    # the clock a quarter as long, 1 and 10 stacks, 100 resources
# Installs what it needs: the emulator (scripts/setup-emulator.sh, in .venv) and, for the
# comparison only (not part of mlops), the aws CLI v1 in its own virtualenv outside the clone
# (${MLOPS_BENCH_VENV:-~/.cache/mlops/bench-venv}). Builds with the release profile
# (`cargo bench`); MLOPS_BENCH_PROFILE=dev reuses the test build instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-emulator.sh
venv="${MLOPS_BENCH_VENV:-$HOME/.cache/mlops/bench-venv}"
if [ ! -x "$venv/bin/aws" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet awscli==1.46.2
fi
export MLOPS_BENCH_AWS="$venv/bin/aws"
exec cargo bench --locked --profile "${MLOPS_BENCH_PROFILE:-bench}" --bench stack -- "$@"
