#!/usr/bin/env bash
# Install the moto AWS emulator (moto_server) used by mlops' end-to-end tests.
#
#   scripts/setup-emulator.sh            # venv at <repo>/.venv
#   MLOPS_VENV=/some/dir scripts/setup-emulator.sh
#
# Creates a virtualenv at ${MLOPS_VENV:-<repo root>/.venv} and installs the exact
# pins of scripts/emulator-requirements.txt (moto[server], boto3, botocore and all
# their resolved dependencies). Idempotent: a stamp file in the venv holds the hash
# of the requirements file (plus the Python version); when it matches, nothing is
# done. Safe to run concurrently (flock). On Debian, installs python3 / python3-venv
# with apt-get only when they are missing. Prints one line to stderr; the server is
# then at "$VENV/bin/moto_server".
#
# Env: MLOPS_VENV (venv dir), MLOPS_PYTHON (interpreter used to create the venv,
# default python3).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLOPS_VENV:-$REPO_ROOT/.venv}"
PYTHON="${MLOPS_PYTHON:-python3}"
REQ="$REPO_ROOT/scripts/emulator-requirements.txt"
STAMP="$VENV/.mlops-emulator.stamp"
MOTO_PIN="$(sed -n 's/^moto\[server\]==\([^[:space:]]*\).*/\1/p' "$REQ")"

say() { echo "setup-emulator: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$REQ" ] || die "missing $REQ"

# Hash of what we want: requirements content + the venv's Python major.minor.
want_hash() { # $1 = python executable
    local pyver
    pyver="$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || return 1
    { cat "$REQ"; echo "python=$pyver"; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -f "$STAMP" ] && [ -x "$VENV/bin/moto_server" ] || return 1
    local h
    h="$(want_hash "$VENV/bin/python" 2>/dev/null)" || return 1
    [ "$(cat "$STAMP")" = "$h" ]
}

# Fast path: nothing to do, no lock taken.
if up_to_date; then
    say "up to date: moto $MOTO_PIN in $VENV"
    exit 0
fi

# Serialize concurrent installs into the same venv.
if command -v flock >/dev/null 2>&1; then
    LOCK="${TMPDIR:-/tmp}/mlops-setup-emulator.$(printf '%s' "$VENV" | sha256sum | cut -c1-16).lock"
    exec 9>"$LOCK"
    flock 9
    if up_to_date; then
        say "up to date: moto $MOTO_PIN in $VENV (installed by a concurrent run)"
        exit 0
    fi
fi

start=$SECONDS

# --- make sure we can create a venv (Debian splits venv/ensurepip out) ---------
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || return 1
        sudo="sudo -n"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    [ "$PYTHON" = python3 ] && apt_install python3 python3-venv \
        || die "$PYTHON not found (install python3 >= 3.9)"
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv || die "'$PYTHON -m venv' unusable and python3-venv could not be installed"
    "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
        || die "'$PYTHON -m venv' still unusable after installing python3-venv (set MLOPS_PYTHON?)"
fi

# --- (re)create the venv ---------------------------------------------------------
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    # Broken venv (e.g. its interpreter was removed). Only delete it if we made it.
    if [ -f "$STAMP" ] || [ -z "$(ls -A "$VENV" 2>/dev/null)" ]; then
        rm -rf "$VENV"
    else
        die "$VENV exists but is not a working virtualenv; remove it or set MLOPS_VENV"
    fi
elif [ -f "$STAMP" ]; then
    # Our venv with other pins: rebuild from scratch so no stale packages remain.
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv $VENV' failed"
fi

# --- install the pinned set -------------------------------------------------------
log="$(mktemp "${TMPDIR:-/tmp}/mlops-setup-emulator.XXXXXX.log")"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$VENV/bin/python" -m pip install -r "$REQ" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pip install failed (full log: $log)"
fi
rm -f "$log"
"$VENV/bin/python" -c 'import moto, boto3, flask' >/dev/null 2>&1 \
    || die "installed packages do not import"
[ -x "$VENV/bin/moto_server" ] || die "moto_server missing from $VENV/bin"

h="$(want_hash "$VENV/bin/python")"
printf '%s\n' "$h" >"$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP"
say "installed moto $MOTO_PIN (+boto3/botocore pins) in $VENV in $((SECONDS - start))s"
