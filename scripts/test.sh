#!/usr/bin/env bash
# The test command of the README: everything a fresh machine needs, then every check CI runs.
#   scripts/test.sh              # format, lints, unit, CLI, Kubernetes and end-to-end tests
# Installs the AWS emulator (moto, pinned, in .venv) if missing, and builds the real
# kube-apiserver 1.35.4 and etcd 3.6.5 from Go modules once (scripts/setup-kube-apiserver.sh:
# cached outside the clone, a second run takes 0.1 s, the first 4 to 7 min with Go's module
# proxy); the tests start them on 127.0.0.1 and stop them.
# MLOPS_KUBE_APISERVER set: that binary is used (etcd beside it, or MLOPS_ETCD), nothing built.
# Needs the Rust toolchain with rustfmt and clippy (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "AWS emulator"
scripts/setup-emulator.sh

step "kube-apiserver 1.35.4 and etcd 3.6.5"
if [ -z "${MLOPS_KUBE_APISERVER:-}" ]; then
    MLOPS_KUBE_APISERVER="$(scripts/setup-kube-apiserver.sh | tail -n 1)"
fi
export MLOPS_KUBE_APISERVER

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
