#!/usr/bin/env bash
# The test command of the README: everything a fresh machine needs, then every check CI runs.
#   scripts/test.sh              # format, lints, unit, CLI and end-to-end tests
# Installs the AWS emulator (moto, pinned, in .venv) if missing; the tests start it themselves
# on 127.0.0.1 and stop it. Needs the Rust toolchain with rustfmt and clippy (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "AWS emulator"
scripts/setup-emulator.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# One closing line with the totals of every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
