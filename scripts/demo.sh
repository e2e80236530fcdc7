#!/usr/bin/env bash
# The demo command of the README: the main job on the bundled example, against a local AWS
# emulator, so it needs no AWS account. Builds mlops, installs and starts moto on a free
# loopback port, then runs `apply`, `plan` and `destroy` of stacks/example.toml with the
# add-ons switched off and without its `[workloads]` (the emulator's cluster endpoint leads
# nowhere; `mlops plan stacks/example.toml` shows them). Stops the emulator at
# the end; the state goes to a temporary folder.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

scripts/setup-emulator.sh
cargo build --locked --quiet
mlops="$repo/target/debug/mlops"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
work="$(mktemp -d)"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "${MLOPS_VENV:-$repo/.venv}/bin/moto_server" -H 127.0.0.1 -p "$port" \
    >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/moto-api/data.json" >/dev/null 2>&1 && break
    sleep 0.1
done

mkdir -p "$work/stacks"
# `[workloads]` is the example's last table: everything from it on goes.
sed -e 's/^enabled = true/enabled = false/' -e '/^\[workloads\]/,$d' stacks/example.toml >"$work/stacks/example.toml"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
    AWS_EC2_METADATA_DISABLED=true
cd "$work"

run() { printf '\n$ mlops %s\n' "$*" >&2; "$mlops" "$@"; }
run apply example --auto-approve
run output example
run plan example --detailed-exitcode
run destroy example --auto-approve
