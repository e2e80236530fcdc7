#!/usr/bin/env bash
# Prove that the kube-apiserver built by scripts/setup-kube-apiserver.sh runs: start etcd and
# kube-apiserver on free loopback ports with throw-away state, wait for /readyz, create a
# namespace, a CRD and one custom object with curl, read them back, stop both.
#
#   scripts/try-kube-apiserver.sh                 # runs setup first (fast when cached)
#   MLOPS_KUBE_APISERVER=/path/kube-apiserver scripts/try-kube-apiserver.sh
#
# This file documents the exact flags the Rust test harness uses (see docs/testing.md):
#   etcd:  --data-dir <tmp> --listen-client-urls/--advertise-client-urls http://127.0.0.1:<c>
#          --listen-peer-urls/--initial-advertise-peer-urls http://127.0.0.1:<p>
#          --initial-cluster <name>=http://127.0.0.1:<p>
#   kube-apiserver: see APISERVER_FLAGS below. It refuses to start without
#          --service-account-issuer and --service-account-signing-key-file; it serves no
#          insecure port.
# TLS: one self-signed certificate (CA:FALSE, SAN IP:127.0.0.1, serverAuth) is both the serving
# certificate and the client's trust anchor (curl --cacert; rustls accepts it, a CA:TRUE
# certificate used as the server certificate it would reject). Auth: a static bearer token in
# group system:masters (--token-auth-file), RBAC authorization.
# Only 127.0.0.1 is contacted. Prints timings on stderr; exits non-zero on any failure.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOKEN="mlops-test-admin-token"
READY_TIMEOUT="${MLOPS_KUBE_READY_TIMEOUT:-120}" # seconds

say() { echo "try-kube-apiserver: $*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

APISERVER="${MLOPS_KUBE_APISERVER:-}"
if [ -z "$APISERVER" ]; then
    APISERVER="$("$REPO_ROOT/scripts/setup-kube-apiserver.sh" | tail -n 1)"
fi
[ -x "$APISERVER" ] || die "no kube-apiserver at '$APISERVER'"
ETCD="${MLOPS_ETCD:-$(dirname "$APISERVER")/etcd}"
[ -x "$ETCD" ] || die "no etcd at $ETCD (scripts/setup-kube-apiserver.sh builds it)"
for t in openssl curl jq; do command -v "$t" >/dev/null || die "$t is needed"; done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mlops-try-kube.XXXXXX")"
ETCD_PID="" API_PID=""
stop() { # $1 = pid: TERM, up to 10 s, then KILL
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop "$API_PID"
    stop "$ETCD_PID"
    if [ $rc -ne 0 ]; then
        for l in etcd apiserver; do
            [ -s "$TMP/$l.log" ] && { say "--- last lines of $l.log"; tail -n 15 "$TMP/$l.log" >&2; }
        done
    fi
    if [ "${MLOPS_KUBE_KEEP_TMP:-}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1 (asks the kernel; bash-only fallback probes random ports).
USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 50); do
        if command -v python3 >/dev/null 2>&1; then
            p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        else
            p=$((20000 + RANDOM % 40000))
            if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        fi
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        USED_PORTS+="$p "
        echo "$p"
        return 0
    done
    die "no free port on 127.0.0.1"
}
ETCD_CLIENT="$(free_port)"
ETCD_PEER="$(free_port)"
API_PORT="$(free_port)"

# --- credentials ----------------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -keyout "$TMP/serving.key" -out "$TMP/serving.crt" \
    -addext "subjectAltName=IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=serverAuth" 2>"$TMP/openssl.log" \
    || { cat "$TMP/openssl.log" >&2; die "openssl req failed"; }
openssl genrsa -out "$TMP/sa.key" 2048 2>>"$TMP/openssl.log"
openssl rsa -in "$TMP/sa.key" -pubout -out "$TMP/sa.pub" 2>>"$TMP/openssl.log"
echo "$TOKEN,admin,admin,system:masters" >"$TMP/tokens.csv"

# --- etcd -----------------------------------------------------------------------------------
t_etcd="$(now)"
"$ETCD" --name mlops-test --data-dir "$TMP/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "mlops-test=http://127.0.0.1:$ETCD_PEER" \
    >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 200); do
    kill -0 "$ETCD_PID" 2>/dev/null || die "etcd exited"
    curl -fsS "http://127.0.0.1:$ETCD_CLIENT/health" 2>/dev/null | grep -q '"health":"true"' && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$ETCD_CLIENT/health" | grep -q '"health":"true"' || die "etcd not healthy after 20 s"
say "etcd $("$ETCD" --version | sed -n 's/^etcd Version: *//p') healthy on 127.0.0.1:$ETCD_CLIENT in $(since "$t_etcd")s"

# --- kube-apiserver -------------------------------------------------------------------------
APISERVER_FLAGS=(
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT"
    --bind-address 127.0.0.1
    --secure-port "$API_PORT"
    --advertise-address 127.0.0.1
    --endpoint-reconciler-type none   # else: Endpoints "kubernetes" ... may not be in the loopback range
    --tls-cert-file "$TMP/serving.crt"
    --tls-private-key-file "$TMP/serving.key"
    --cert-dir "$TMP/certs"
    --token-auth-file "$TMP/tokens.csv"
    --authorization-mode RBAC
    --service-account-issuer https://kubernetes.default.svc
    --service-account-key-file "$TMP/sa.pub"
    --service-account-signing-key-file "$TMP/sa.key"
    --service-cluster-ip-range 10.96.0.0/16
    --enable-aggregator-routing=true  # webhooks and aggregated APIs called at their endpoints
)
t_api="$(now)"
"$APISERVER" "${APISERVER_FLAGS[@]}" >"$TMP/apiserver.log" 2>&1 &
API_PID=$!

URL="https://127.0.0.1:$API_PORT"
kcurl() { # kcurl METHOD PATH [JSON-BODY]: authenticated call, body on stdout, fails on HTTP >= 400
    local args=(-sS --fail-with-body --cacert "$TMP/serving.crt" -H "Authorization: Bearer $TOKEN" -X "$1")
    [ $# -ge 3 ] && args+=(-H "Content-Type: application/json" --data-binary "$3")
    curl "${args[@]}" "$URL$2"
}
ready=""
deadline=$((SECONDS + READY_TIMEOUT))
while [ $SECONDS -lt $deadline ]; do
    kill -0 "$API_PID" 2>/dev/null || die "kube-apiserver exited (flags rejected?)"
    if [ "$(kcurl GET /readyz 2>/dev/null)" = ok ]; then ready=1; break; fi
    sleep 0.2
done
[ -n "$ready" ] || { kcurl GET '/readyz?verbose' >&2 || true; die "/readyz not ok after ${READY_TIMEOUT}s"; }
ready_s="$(since "$t_api")"
say "kube-apiserver $(kcurl GET /version | jq -r .gitVersion) ready on $URL in ${ready_s}s"

# --- namespace, CRD, custom object ----------------------------------------------------------
NS=mlops-try
kcurl POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" >/dev/null
phase="$(kcurl GET "/api/v1/namespaces/$NS" | jq -r .status.phase)"
[ "$phase" = Active ] || die "namespace $NS: phase '$phase'"
say "namespace $NS: $phase"

CRD='{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "models.serving.mlops.test"},
  "spec": {
    "group": "serving.mlops.test",
    "scope": "Namespaced",
    "names": {"plural": "models", "singular": "model", "kind": "Model", "listKind": "ModelList"},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
          "image": {"type": "string"}, "replicas": {"type": "integer"}}}}}}
    }]
  }
}'
kcurl POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "$CRD" >/dev/null
established=""
for _ in $(seq 100); do
    established="$(kcurl GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/models.serving.mlops.test \
        | jq -r '.status.conditions[]? | select(.type == "Established") | .status')"
    [ "$established" = True ] && break
    sleep 0.1
done
[ "$established" = True ] || die "CRD models.serving.mlops.test not Established"
say "CRD models.serving.mlops.test: Established"

# The new resource is served once discovery has it; retry the create briefly.
OBJ="{\"apiVersion\":\"serving.mlops.test/v1\",\"kind\":\"Model\",\"metadata\":{\"name\":\"m1\"},\"spec\":{\"image\":\"example/m1:1\",\"replicas\":2}}"
for i in $(seq 50); do
    kcurl POST "/apis/serving.mlops.test/v1/namespaces/$NS/models" "$OBJ" >/dev/null 2>&1 && break
    [ "$i" = 50 ] && die "could not create Model m1"
    sleep 0.1
done
replicas="$(kcurl GET "/apis/serving.mlops.test/v1/namespaces/$NS/models/m1" | jq -r .spec.replicas)"
[ "$replicas" = 2 ] || die "Model m1 read back with replicas '$replicas'"
say "Model $NS/m1 read back: spec.replicas=$replicas"

# --- stop -----------------------------------------------------------------------------------
t_stop="$(now)"
stop "$API_PID"; API_PID=""
stop "$ETCD_PID"; ETCD_PID=""
say "stopped both in $(since "$t_stop")s; kube-apiserver time to /readyz: ${ready_s}s"
grep -E '^(W|E)[0-9]{4} ' "$TMP/apiserver.log" | grep -iE 'flag|deprecat' | cut -c1-200 | sort -u | head -n 10 >&2 || true
echo "ok"
