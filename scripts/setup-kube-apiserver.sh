#!/usr/bin/env bash
# Build the test clusters' Kubernetes API server and its etcd from Go modules, and cache both
# outside the repo: kube-apiserver 1.35.4 (k8s.io/kubernetes, a release EKS offers) and etcd
# 3.6.5 (go.etcd.io/etcd/server/v3, the version that release requires). Tests run both on
# loopback (tests/support/kube_apiserver.rs).
#
#   bin=$(scripts/setup-kube-apiserver.sh)       # last stdout line: path of kube-apiserver
#   MLOPS_KUBE_CACHE=/some/dir scripts/setup-kube-apiserver.sh
#
# The module scripts/kube-apiserver/ (go.mod + go.sum, committed: every module's checksum is
# pinned) requires both as Go tools. `go build` of k8s.io/kubernetes/cmd/kube-apiserver takes
# about 7 minutes on 2 cores with an empty Go build cache, etcd about 1 more; downloads come
# from the Go module proxy only ($GOPROXY).
#
# Cache: ${MLOPS_KUBE_CACHE:-$HOME/.cache/mlops/kube-apiserver-1.35.4}/{kube-apiserver,etcd},
# with `stamp`, the SHA-256 of go.mod and go.sum they were built from. Fast path: both binaries
# there, the stamp matches, `kube-apiserver --version` prints "Kubernetes v1.35.4" and openssl
# (the harness makes its certificates with it) is installed: one line on stderr, the path on
# stdout, nothing built.
#
# Needs Go 1.21 or newer on PATH (with GOTOOLCHAIN=auto an older one fetches the Go that
# go.mod asks for from the module proxy) and openssl (installed with apt-get, as root or
# through password-less sudo, when missing). Safe to rerun after a failure and to run
# concurrently (flock on the cache dir).
set -euo pipefail

K8S_VERSION=1.35.4
MODULE="$(cd "$(dirname "${BASH_SOURCE[0]}")/kube-apiserver" && pwd)"
CACHE="${MLOPS_KUBE_CACHE:-${HOME:?HOME is not set}/.cache/mlops/kube-apiserver-$K8S_VERSION}"
BIN="$CACHE/kube-apiserver"
ETCD="$CACHE/etcd"

say() { echo "setup-kube-apiserver: $*" >&2; }
die() { say "error: $*"; exit 1; }

stamp() { cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -d' ' -f1; }
built() {
    [ -x "$BIN" ] && [ -x "$ETCD" ] && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$(stamp)" ] \
        && [ "$("$BIN" --version 2>/dev/null)" = "Kubernetes v$K8S_VERSION" ]
}
etcd_version() { "$ETCD" --version 2>/dev/null | sed -n 's/^etcd Version: *//p'; }

ensure_openssl() {
    command -v openssl >/dev/null && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "openssl is missing, and not root and no sudo to install it"
        sudo=(sudo -n)
    fi
    say "apt-get install openssl"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl \
        >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; die "apt-get install openssl failed"; }
}

# --- fast path: nothing to do, no lock ----------------------------------------------------
if built && command -v openssl >/dev/null; then
    say "up to date: kube-apiserver v$K8S_VERSION at $BIN, etcd $(etcd_version) at $ETCD"
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
ensure_openssl
if built; then
    say "up to date: kube-apiserver v$K8S_VERSION at $BIN (built by a concurrent run), etcd $(etcd_version)"
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || die "no Go on PATH: install Go 1.21 or newer (https://go.dev/doc/install)"
export GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$SECONDS
cd "$MODULE"
say "$(go version | cut -d' ' -f3-), module $MODULE"

# `go build` leaves the version fields at their placeholders ("v0.0.0-master"); the server's
# /version is what clients (and mlops' version checks) read, so stamp it as the release does.
v=k8s.io/component-base/version
ldflags="-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=${K8S_VERSION%%.*}"
ldflags+=" -X $v.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean"
ldflags+=" -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
build() { # $1 = package, $2 = output, $3 = ldflags
    local log="$CACHE/build-$(basename "$2").log" t0=$SECONDS
    say "go build $1 (log: $log)"
    if ! go build -trimpath -ldflags "$3" -o "$2.tmp" "$1" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "go build $1 failed (log: $log)"
    fi
    mv -f "$2.tmp" "$2"
    say "built $(basename "$2") in $((SECONDS - t0))s"
}
build k8s.io/kubernetes/cmd/kube-apiserver "$BIN" "$ldflags"
build go.etcd.io/etcd/server/v3 "$ETCD" "-s -w"
stamp >"$CACHE/stamp"
built || die "$BIN --version prints '$("$BIN" --version 2>&1 || true)', not 'Kubernetes v$K8S_VERSION'"
say "installed kube-apiserver v$K8S_VERSION and etcd $(etcd_version) in $CACHE in $((SECONDS - start))s"
echo "$BIN"
