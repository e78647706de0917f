#!/usr/bin/env bash
# Latchkey's refresh grants measured by wrk (Debian's wrk, a C event loop)
# instead of latchkey-bench: the same server setup as matrix.sh (`latchkey
# serve` on SQLite pinned to CPU 0, the load on CPU 1), tokens obtained
# through the sign-in pages by `latchkey-bench -tokens-out`, rotation by
# refresh.lua. It cross-checks latchkey-bench's latencies with a load
# generator that has no scheduler or collector of its own
# (docs/BENCHMARKS.md, session 12).
#
#   cmd/latchkey-bench/wrk/run.sh OUT [ALGS] [CONCS]
#
#   ALGS   "ES256"   (signing_alg, as matrix.sh)
#   CONCS  "16 64"
#   env    RUNS=3 (rounds; each round runs every concurrency once)
#          DUR=10s WARMUP=3s PORT=18080
#          SERVE_ENV="NAME=VALUE ..." extra environment for the server only
#          STALLS=10s after each run, measure the machine's stalls for
#                 that long (latchkey-bench stalls, both cores busy, the
#                 server stopped with SIGSTOP meanwhile so that its
#                 after-run work is not counted) and add the p99/p50 they
#                 alone give at the run's median
#
# Each run gets fresh tokens (a rotated token serves once): C+2 for a
# warm-up of WARMUP, C+2 more for the measured DUR. The wrk output of each
# run is kept in OUT as wrk-ALG-cC-rR.txt; one line per run is printed.
set -euo pipefail
out=${1:?usage: run.sh OUT [ALGS] [CONCS]}
algs=${2:-ES256} concs=${3:-"16 64"}
runs=${RUNS:-3} dur=${DUR:-10s} warm=${WARMUP:-3s}
read -r -a serve_env <<<"${SERVE_ENV:-}"
command -v wrk >/dev/null || { echo "run.sh needs wrk (apt-get install wrk)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../../.." && pwd)
script=$root/cmd/latchkey-bench/wrk/refresh.lua

mkdir -p "$out"
out=$(cd "$out" && pwd)
. "$root/cmd/latchkey-bench/setup.sh" # binaries, port, secret, LATCHKEY_* environment
basic=$(printf 'bench:%s' "$secret" | base64 -w0)

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$out"/tokens-*; true' EXIT

ms() { # wrk's "2.65ms" / "980.00us" / "1.02s" → milliseconds
	case $1 in
	*us) awk -v v="${1%us}" 'BEGIN{printf "%.3f", v/1000}' ;;
	*ms) echo "${1%ms}" ;;
	*s) awk -v v="${1%s}" 'BEGIN{printf "%.3f", v*1000}' ;;
	esac
}

tokens() { # tokens FILE N: N fresh refresh tokens into FILE
	rm -f "$1"
	taskset -c 1 "$bench" -issuer "$LATCHKEY_ISSUER" -client-id bench -client-secret "$secret" \
		-redirect-uri http://localhost:9999/cb -username bench -c 1 -n "$2" -tokens-out "$1" 2>/dev/null
}

rm -f "$out"/bench.db*
export LATCHKEY_DATABASE=$out/bench.db
"$lk" migrate >/dev/null
"$lk" client create --id bench --secret "$secret" --redirect-uri http://localhost:9999/cb --name Bench >/dev/null
printf '%s\n' "$LATCHKEY_BENCH_PASSWORD" | "$lk" user create --username bench --password-stdin >/dev/null
for alg in $algs; do
	export LATCHKEY_SIGNING_ALG=$alg
	env "${serve_env[@]}" taskset -c 0 "$lk" serve >>"$out/server-$alg.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
	for r in $(seq "$runs"); do
		for c in $concs; do
			tokens "$out/tokens-warm" $((c + 2))
			tokens "$out/tokens-run" $((c + 2))
			taskset -c 1 wrk -t1 -c"$c" -d"$warm" -s "$script" "$LATCHKEY_ISSUER" -- "$out/tokens-warm" "$basic" >/dev/null
			f=$out/wrk-$alg-c$c-r$r.txt
			taskset -c 1 wrk -t1 -c"$c" -d"$dur" --latency -s "$script" "$LATCHKEY_ISSUER" -- "$out/tokens-run" "$basic" >"$f"
			rps=$(awk '/Requests\/sec/{printf "%.0f", $2}' "$f")
			p50=$(ms "$(awk '$1=="50%"{print $2}' "$f")")
			p99=$(ms "$(awk '$1=="99%"{print $2}' "$f")")
			bad=$(awk '/^refused/{print $2}' "$f")
			floor=
			if [ -n "${STALLS:-}" ]; then
				kill -STOP "$pid"
				"$bench" stalls -d "$STALLS" -window "${p50}ms" >"$out/stalls-$alg-c$c-r$r.txt" || { kill -CONT "$pid"; exit 1; }
				kill -CONT "$pid"
				floor="  machine floor $(awk '/floor/{print $NF}' "$out/stalls-$alg-c$c-r$r.txt")"
			fi
			awk -v a="$alg" -v c="$c" -v r="$r" -v g="$rps" -v p="$p50" -v q="$p99" -v b="$bad" -v f="$floor" \
				'BEGIN{printf "%s c=%-3s run %s  grants/s %s  p50 %.2f ms  p99 %.2f ms  p99/p50 %.2f  failed %s%s\n", a, c, r, g, p, q, q/p, b, f}'
		done
	done
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
