#!/usr/bin/env bash
# Full measurement of oidc-provider 9.13.x (/tmp/peers/oidc-provider/server.mjs)
# with Latchkey's load tool, like cmd/latchkey-bench/matrix.sh does for
# Latchkey: the server pinned to CPU 0, the tool to CPU 1, one run at a time.
#
#   cmd/latchkey-bench/peers/oidc-provider/run.sh OUT
#
# It installs oidc-provider (package.json pins the version) with npm into
# this directory on first use and builds latchkey-bench into OUT/bin.
#
#   env RUNS=3 DUR=10s WARMUP=3s PORT=3000
#       BENCH_SECRET=bench-secret-0123456789abcdef0123456789abcdef
#       CODE_NOPROMPT=1  also run code c=16 without prompt=consent (no
#                        consent page per iteration, but then oidc-provider
#                        drops offline_access: no refresh token is issued)
#
# Runs: refresh c=16, refresh c=64, introspect c=16, code c=16, RUNS times
# each, one JSON result per run in OUT, then `latchkey-bench summarize`.
# Every authorization uses prompt=consent: oidc-provider drops
# offline_access (no refresh token) from a request whose prompt lacks consent.
set -euo pipefail
out=${1:?usage: run-oidc-provider.sh OUT}
runs=${RUNS:-3} dur=${DUR:-10s} warm=${WARMUP:-3s} port=${PORT:-3000}
dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$dir/../../../.." && pwd)
export BENCH_SECRET=${BENCH_SECRET:-bench-secret-0123456789abcdef0123456789abcdef}
issuer=http://127.0.0.1:$port

[ -d "$dir/node_modules/oidc-provider" ] || (cd "$dir" && npm install --no-audit --no-fund >/dev/null)
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)
(cd "$root" && go build -o "$out/bin/latchkey-bench" ./cmd/latchkey-bench)
bench=$out/bin/latchkey-bench

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

{ echo "# $(date -u +%FT%TZ) nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "# node $(node -v) oidc-provider $(node -p "require('$dir/node_modules/oidc-provider/package.json').version") NODE_ENV=production"
  echo "# runs=$runs dur=$dur warmup=$warm"; } >"$out/MACHINE"

(cd "$dir" && PORT=$port NODE_ENV=production exec taskset -c 0 node server.mjs) >>"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf "$issuer/.well-known/openid-configuration" >/dev/null && break; sleep 0.2; done
curl -sf "$issuer/.well-known/openid-configuration" >/dev/null || { echo "server did not start, see $out/server.log" >&2; exit 1; }
[ "$(cat /proc/$pid/comm)" = node ] || { echo "PID $pid is not node" >&2; exit 1; }

# one MODE C NAME [extra flags]: RUNS runs, each into OUT/NAME-rN.json
one() {
  local mode=$1 c=$2 name=$3; shift 3
  for r in $(seq 1 "$runs"); do
    echo "== $name run $r (load avg $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    taskset -c 1 "$bench" -issuer "$issuer" -client-id bench -client-secret "$BENCH_SECRET" \
      -redirect-uri http://localhost:9999/cb -username bench -password x \
      -mode "$mode" -c "$c" -d "$dur" -warmup "$warm" -pid "$pid" -json "$@" >"$out/$name-r$r.json"
  done
  echo "   RSS after $name: $(grep VmRSS /proc/$pid/status | tr -s ' \t' ' ')" >&2
}
one refresh 16 refresh-c16 -prompt consent -label oidc-provider
one refresh 64 refresh-c64 -prompt consent -label oidc-provider
one introspect 16 introspect-c16 -prompt consent -label oidc-provider
one code 16 code-c16 -prompt consent -label oidc-provider
if [ "${CODE_NOPROMPT:-0}" = 1 ]; then
  one code 16 code-noprompt-c16 -label "oidc-provider no prompt=consent (no refresh token)"
fi
grep VmRSS /proc/$pid/status >"$out/RSS"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
"$bench" summarize "$out"/*-r*.json | tee "$out/SUMMARY"
