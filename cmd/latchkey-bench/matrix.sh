#!/usr/bin/env bash
# Runs the load matrix of docs/BENCHMARKS.md on this machine: `latchkey
# serve` pinned to CPU 0 and latchkey-bench pinned to CPU 1, for each
# database, signing algorithm and concurrency, RUNS times each. It writes one
# JSON result per run (and the server logs) into OUT and prints the medians.
#
#   cmd/latchkey-bench/matrix.sh OUT [DBS] [ALGS] [CONCS]
#
#   DBS    "sqlite postgres"   (PostgreSQL: database latchkey_bench, recreated)
#   ALGS   "ES256 RS256"       (any of RS256 ES256 EdDSA: signing_alg, for
#                               access and ID tokens; SIG+ID, e.g.
#                               ES256+RS256: access tokens SIG, the bench
#                               client's ID tokens ID (--id-token-alg))
#   CONCS  "16 64"
#   env    RUNS=3 DUR=15s WARMUP=3s MODE=refresh PORT=18080
#          INTERVAL=1m adds a per-interval series to each result (long runs)
#          DUMP=1 writes each run's requests (start, latency) next to its
#          result as .dump, for latchkey-bench sched (Linux)
#          PG=postgres://postgres@127.0.0.1:5432 (server with trust auth)
#          SERVE_ENV="NAME=VALUE ..." extra environment for the server only
#          (e.g. LATCHKEY_SQLITE_CHECKPOINT_INTERVAL=500ms GOGC=800)
#          NICE=-10 runs the server and the tool at that nice level, so that
#          other work on a shared machine disturbs the figures less
#          (needs root; unset by default)
#
# Everything runs on loopback; the load tool refuses anything else.
set -euo pipefail
out=${1:?usage: matrix.sh OUT [DBS] [ALGS] [CONCS]}
dbs=${2:-"sqlite postgres"}
algs=${3:-"ES256 RS256"}
concs=${4:-"16 64"}
runs=${RUNS:-3} dur=${DUR:-15s} warm=${WARMUP:-3s} mode=${MODE:-refresh}
pgbase=${PG:-postgres://postgres@127.0.0.1:5432}
prio=()
[ -n "${NICE:-}" ] && prio=(nice -n "$NICE")
read -r -a serve_env <<<"${SERVE_ENV:-}"
root=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$out"
out=$(cd "$out" && pwd)
. "$root/cmd/latchkey-bench/setup.sh" # binaries, port, secret, LATCHKEY_* environment

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

{ echo "# $(date -u +%FT%TZ) nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "# $(go version) commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# dbs=$dbs algs=$algs concs=$concs runs=$runs dur=$dur warmup=$warm mode=$mode nice=${NICE:-0} serve_env=${SERVE_ENV:-}"; } >"$out/MACHINE"

for db in $dbs; do
  match=()
  case $db in
  sqlite)
    rm -f "$out"/bench.db*
    export LATCHKEY_DATABASE=$out/bench.db ;;
  postgres)
    psql "$pgbase/postgres" -qc 'DROP DATABASE IF EXISTS latchkey_bench' -c 'CREATE DATABASE latchkey_bench' >/dev/null
    export LATCHKEY_DATABASE="$pgbase/latchkey_bench?sslmode=disable"
    match=(-cpu-match 'postgres: .*latchkey_bench') ;;
  *) echo "unknown database $db" >&2; exit 2 ;;
  esac
  "$lk" migrate >/dev/null
  "$lk" client create --id bench --secret "$secret" --redirect-uri http://localhost:9999/cb --name Bench >/dev/null
  printf '%s\n' "$LATCHKEY_BENCH_PASSWORD" | "$lk" user create --username bench --password-stdin >/dev/null
  for alg in $algs; do
    sig=${alg%%+*} idalg=
    [ "$sig" != "$alg" ] && idalg=${alg#*+}
    export LATCHKEY_SIGNING_ALG=$sig LATCHKEY_ID_TOKEN_ALGS=$idalg
    # The server creates its key set at start; the client's algorithm is
    # checked against the configured set, so update it with the same env.
    "$lk" client update --id bench --id-token-alg "$idalg" >/dev/null
    env "${serve_env[@]}" taskset -c 0 "${prio[@]}" "$lk" serve >>"$out/server-$db-$alg.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    for c in $concs; do
      for r in $(seq 1 "$runs"); do
        f=$out/$mode-$db-$alg-c$c-r$r.json
        echo "== $mode $db $alg c=$c run $r (load avg $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        taskset -c 1 "${prio[@]}" "$bench" -issuer "$LATCHKEY_ISSUER" -client-id bench -client-secret "$secret" \
          -redirect-uri http://localhost:9999/cb -username bench -mode "$mode" -c "$c" -d "$dur" -warmup "$warm" \
          -pid "$pid" "${match[@]}" ${INTERVAL:+-interval "$INTERVAL"} ${DUMP:+-dump "${f%.json}.dump"} -label "$db $alg" -json >"$f"
      done
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
"$bench" summarize "$out"/"$mode"-*-r*.json | tee "$out/SUMMARY"
