#!/usr/bin/env bash
# Build a real kube-apiserver 1.20.2 from Debian bookworm's source package `kubernetes`
# (Kubernetes 1.20.2 with its vendor/ folder) and cache the binary outside the repo; make
# sure etcd (Debian's etcd-server 3.4) is installed. Tests then run both on loopback.
#
#   bin=$(scripts/setup-kube-apiserver.sh)       # last stdout line: path of the binary
#   MLOPS_KUBE_CACHE=/some/dir scripts/setup-kube-apiserver.sh
#
# Cache: ${MLOPS_KUBE_CACHE:-$HOME/.cache/mlops/kube-apiserver-1.20.2}/kube-apiserver.
# Fast path: when that binary exists, `--version` prints "Kubernetes v1.20.2", /usr/bin/etcd
# exists and so does `openssl` (the test harness makes its certificates with it), nothing is
# done (no apt call): one line on stderr, the path on stdout.
#
# Otherwise (progress on stderr, apt-get output and the build log in files under the cache):
#   1. if apt has no deb-src entry for bookworm, write /etc/apt/sources.list.d/
#      mlops-deb-src.sources reusing the URIs (and Signed-By) of the existing bookworm `deb`
#      entries: no other host is named;
#   2. apt-get update; apt-get install -y the missing ones of golang-go rsync jq etcd-server
#      golang-github-modern-go-reflect2-dev openssl (and make);
#   3. in a clean work folder ($CACHE/work, wiped first, removed on success):
#      apt-get source --download-only kubernetes=$DEB_VERSION, unpack the .orig.tar.gz,
#      replace vendor/github.com/modern-go/reflect2 1.0.1 by Debian's 1.0.2 from
#      /usr/share/gocode/src (built with Go >= 1.18, 1.0.1 breaks the server: "fatal error:
#      fault" in map iteration; here, a nil-pointer panic in reflect2.(*frozenConfig).Type2
#      on the first CRD create, the client getting an HTTP/2 INTERNAL_ERROR),
#      link .go/src/k8s.io/kubernetes -> ../../.. and run
#      GOPATH=$PWD/.go CGO_ENABLED=0 make WHAT=cmd/kube-apiserver   (~5 min on 2 cores);
#   4. install _output/bin/kube-apiserver into the cache and check its --version.
#
# Build-system notes: the make-based build needs no fix. The tarball is a `git archive`, so
# hack/lib/version.sh stamps v1.20.2 (GitTreeState "archive") without .git; hack/lib/init.sh
# forces GO111MODULE=off (GOPATH mode, vendor/) and hack/lib/golang.sh uses its own GOPATH
# (_output/local/go), so the .go link (kept, as in debian/rules) is not strictly needed.
# As debian/rules does, /usr/lib/go/bin (Debian's Go 1.19) goes first on PATH.
#
# Env: MLOPS_KUBE_CACHE (cache dir), MLOPS_KUBE_KEEP_WORK=1 (keep the work folder).
# Needs root or password-less sudo for apt-get (only on the slow path). Safe to rerun after a
# failure (the work folder is wiped) and to run concurrently (flock on the cache dir).
set -euo pipefail

K8S_VERSION=1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
SUITE=bookworm
CACHE="${MLOPS_KUBE_CACHE:-${HOME:?HOME is not set}/.cache/mlops/kube-apiserver-$K8S_VERSION}"
BIN="$CACHE/kube-apiserver"
WORK="$CACHE/work"
ETCD=/usr/bin/etcd
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
PACKAGES=(golang-go rsync jq etcd-server golang-github-modern-go-reflect2-dev openssl make)

say() { echo "setup-kube-apiserver: $*" >&2; }
die() { say "error: $*"; exit 1; }

bin_ok() {
    [ -x "$BIN" ] && [ "$("$BIN" --version 2>/dev/null)" = "Kubernetes v$K8S_VERSION" ]
}
all_ready() { bin_ok && [ -x "$ETCD" ] && command -v openssl >/dev/null; }
etcd_version() { "$ETCD" --version 2>/dev/null | sed -n 's/^etcd Version: *//p'; }

# --- fast path: nothing to do, no apt, no lock -------------------------------------------
if all_ready; then
    say "up to date: kube-apiserver v$K8S_VERSION at $BIN, etcd $(etcd_version) at $ETCD"
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if all_ready; then
    say "up to date: kube-apiserver v$K8S_VERSION at $BIN (built by a concurrent run), etcd $(etcd_version)"
    echo "$BIN"
    exit 0
fi

start=$SECONDS
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot run apt-get"
    SUDO=(sudo -n)
fi
APT_LOG="$CACHE/apt.log"
: >"$APT_LOG"
apt_get() { # apt-get with its output in $APT_LOG; the tail of it on failure
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$APT_LOG" 2>&1; then
        tail -n 20 "$APT_LOG" >&2
        die "apt-get $* failed (log: $APT_LOG)"
    fi
}

# --- 1. a deb-src entry for bookworm ------------------------------------------------------
# apt reads sources.list and sources.list.d/*.list (one-line format) and *.sources (deb822).
apt_source_files() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && printf '%s\n' "$f"
    done
}
# Prints, from one file, the entries of type $1 (deb or deb-src) for suite $SUITE, rewritten
# as deb-src entries for $SUITE: one-line entries as one-line, deb822 stanzas as stanzas.
entries_for_suite() { # $1 = wanted type, $2 = file
    case "$2" in
    *.sources)
        awk -v want="$1" -v suite="$SUITE" '
            function flush(   i, keep) {
                keep = (n > 0 && enabled && (" " types " ") ~ (" " want " ") && (" " suites " ") ~ (" " suite " "))
                if (keep) {
                    for (i = 1; i <= n; i++) {
                        if (lines[i] ~ /^[Tt]ypes:/) print "Types: deb-src"
                        else if (lines[i] ~ /^[Ss]uites:/) print "Suites: " suite
                        else if (lines[i] ~ /^[Ee]nabled:/) continue
                        else print lines[i]
                    }
                    print ""
                }
                n = 0; types = ""; suites = ""; enabled = 1
            }
            BEGIN { n = 0; enabled = 1 }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                lines[++n] = $0
                if ($0 ~ /^[Tt]ypes:/) { types = $0; sub(/^[^:]*:[ \t]*/, "", types) }
                if ($0 ~ /^[Ss]uites:/) { suites = $0; sub(/^[^:]*:[ \t]*/, "", suites) }
                if ($0 ~ /^[Ee]nabled:[ \t]*[Nn]o/) enabled = 0
            }
            END { flush() }
        ' "$2"
        ;;
    *)
        awk -v want="$1" -v suite="$SUITE" '
            /^[ \t]*#/ || NF < 3 { next }
            $1 == want {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { sub(/^[ \t]*[^ \t]+/, "deb-src"); print }
            }
        ' "$2"
        ;;
    esac
}
has_deb_src=""
while read -r f; do
    if [ -n "$(entries_for_suite deb-src "$f")" ]; then has_deb_src="$f"; break; fi
done < <(apt_source_files)
if [ -n "$has_deb_src" ]; then
    say "deb-src for $SUITE already configured ($has_deb_src)"
else
    one_line="" stanzas=""
    while read -r f; do
        case "$f" in
        *.sources) stanzas+="$(entries_for_suite deb "$f")"$'\n\n' ;;
        *) one_line+="$(entries_for_suite deb "$f")"$'\n' ;;
        esac
    done < <(apt_source_files)
    if [ -n "${stanzas//[[:space:]]/}" ]; then
        target=/etc/apt/sources.list.d/mlops-deb-src.sources
        content="# Added by mlops scripts/setup-kube-apiserver.sh (same URIs as the deb entries).
$(printf '%s' "$stanzas" | cat -s)"
    elif [ -n "${one_line//[[:space:]]/}" ]; then
        target=/etc/apt/sources.list.d/mlops-deb-src.list
        content="# Added by mlops scripts/setup-kube-apiserver.sh (same URIs as the deb entries).
$one_line"
    else
        die "no 'deb' entry for $SUITE in /etc/apt/sources.list{,.d/*}: cannot derive a deb-src entry"
    fi
    printf '%s\n' "$content" | "${SUDO[@]}" tee "$target" >/dev/null
    say "added deb-src for $SUITE in $target (URIs: $(sed -n 's/^URIs: *//p; s/^deb-src //p' "$target" | tr '\n' ' '))"
fi

# --- 2. apt-get update, install what is missing ------------------------------------------
say "apt-get update"
apt_get update
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    apt_get install -y --no-install-recommends "${missing[@]}"
fi
[ -x "$ETCD" ] || die "$ETCD missing after installing etcd-server"
say "etcd $(etcd_version) at $ETCD ($(dpkg-query -W -f='${Version}' etcd-server))"
[ -d "$REFLECT2_SRC" ] || die "$REFLECT2_SRC missing (golang-github-modern-go-reflect2-dev)"

if bin_ok; then
    say "kube-apiserver v$K8S_VERSION already built at $BIN"
    echo "$BIN"
    exit 0
fi

# --- 3. source, vendor fix, build ---------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
say "apt-get source --download-only kubernetes=$DEB_VERSION (into $WORK)"
apt_get source --download-only "kubernetes=$DEB_VERSION"
orig=(kubernetes_*.orig.tar.*)
[ -f "${orig[0]}" ] || die "no kubernetes_*.orig.tar.* downloaded in $WORK"
mkdir src
tar -xf "${orig[0]}" -C src --strip-components=1
cd src
[ -f cmd/kube-apiserver/apiserver.go ] && [ -d vendor ] \
    || die "unexpected layout of ${orig[0]} (no cmd/kube-apiserver or vendor/)"

vendored="$(awk '$1 == "#" && $2 == "github.com/modern-go/reflect2" { print $3; exit }' vendor/modules.txt)"
rm -rf vendor/github.com/modern-go/reflect2
cp -r "$REFLECT2_SRC" vendor/github.com/modern-go/reflect2
say "vendor/github.com/modern-go/reflect2: ${vendored:-?} replaced by Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"

mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes

build_env=(PATH="/usr/lib/go/bin:$PATH" GOPATH="$PWD/.go" CGO_ENABLED=0)
BUILD_LOG="$CACHE/build.log"
say "$(PATH="/usr/lib/go/bin:$PATH" go version | cut -d' ' -f3-): make WHAT=cmd/kube-apiserver (several minutes; log: $BUILD_LOG)"
t0=$SECONDS
if ! env "${build_env[@]}" make WHAT=cmd/kube-apiserver >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    die "make WHAT=cmd/kube-apiserver failed (log: $BUILD_LOG; tree kept in $WORK)"
fi
say "built in $((SECONDS - t0))s"

# --- 4. install into the cache ------------------------------------------------------------
out=_output/bin/kube-apiserver
[ -x "$out" ] || die "$out not produced (log: $BUILD_LOG)"
install -m 0755 "$out" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
bin_ok || die "$BIN --version prints '$("$BIN" --version 2>&1 || true)', not 'Kubernetes v$K8S_VERSION'"
cd "$CACHE"
[ "${MLOPS_KUBE_KEEP_WORK:-}" = 1 ] || rm -rf "$WORK"
say "installed kube-apiserver v$K8S_VERSION ($(du -h "$BIN" | cut -f1)) at $BIN in $((SECONDS - start))s"
echo "$BIN"
