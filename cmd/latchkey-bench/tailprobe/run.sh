#!/usr/bin/env bash
# Tail latency of a bare Go HTTP server, by how it schedules requests: the
# server pinned to CPU 0, the load on CPU 1 (docs/BENCHMARKS.md, session 8).
#
#   cmd/latchkey-bench/tailprobe/run.sh [MODES] [CONCS]
#
#   MODES  "nethttp loop-et loop-lt loop-pool" (see main.go)
#   CONCS  "16 64"
#   env    RUNS=3 (rounds; each round runs every mode once, alternated)
#          DUR=10s WARMUP=2s WORK=150us PORT=9099
#          ALLOC=0 (bytes of garbage per request) LIVE=0 (MiB kept live):
#          the collector's share (Latchkey's refresh: ALLOC=40000 LIVE=12)
#          LOAD=go (tailprobe load) or wrk (wrk -t1 --latency, Debian's wrk)
#          SYNC=0 or 1: each request also waits for a group commit (its
#          SYNCBYTES=4096 appended to a file next to the binary, one fsync
#          per batch), a server whose commits wait for this disk;
#          nethttp and loop-pool only
#          BURN=time (each request burns WORK of wall-clock time) or fixed
#          (a fixed number of hashes that took WORK at start: a slower
#          CPU, e.g. a busy VM host, makes requests slower, as with a real
#          handler; compare the two to see the machine's own share)
set -euo pipefail
cd "$(dirname "$0")"
modes=${1:-nethttp loop-et loop-lt loop-pool}
concs=${2:-16 64}
runs=${RUNS:-3} dur=${DUR:-10s} warmup=${WARMUP:-2s} work=${WORK:-150us}
alloc=${ALLOC:-0} live=${LIVE:-0}
port=${PORT:-9099} loadtool=${LOAD:-go} burnkind=${BURN:-time}
bin=$(mktemp -d "${TMPDIR:-/var/tmp}/tailprobe.XXXXXX")/tailprobe # on disk: -sync's file lives here
syncargs=()
if [ "${SYNC:-0}" = 1 ]; then syncargs=(-sync "$(dirname "$bin")/wal" -syncbytes "${SYNCBYTES:-4096}"); fi
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" .
url=http://127.0.0.1:$port/

ms() { # wrk's "2.65ms" / "980.00us" / "1.02s" → milliseconds
	case $1 in
	*us) awk -v v="${1%us}" 'BEGIN{printf "%.3f", v/1000}' ;;
	*ms) echo "${1%ms}" ;;
	*s) awk -v v="${1%s}" 'BEGIN{printf "%.3f", v*1000}' ;;
	esac
}

for r in $(seq "$runs"); do
	for c in $concs; do
		for m in $modes; do
			taskset -c 0 "$bin" serve -mode "$m" -addr "127.0.0.1:$port" -work "$work" -burn "$burnkind" -alloc "$alloc" -live "$live" "${syncargs[@]}" &
			pid=$!
			for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
			if [ "$loadtool" = wrk ]; then
				taskset -c 1 wrk -t1 -c"$c" -d"$warmup" "$url" >/dev/null
				out=$(taskset -c 1 wrk -t1 -c"$c" -d"$dur" --latency "$url")
				rps=$(awk '/Requests\/sec/{printf "%.0f", $2}' <<<"$out")
				p50=$(ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
				p99=$(ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
				line=$(awk -v r="$rps" -v a="$p50" -v b="$p99" 'BEGIN{printf "requests/s %s  p50 %.2f ms  p99 %.2f ms  p99/p50 %.2f", r, a, b, b/a}')
			else
				line=$(taskset -c 1 "$bin" load -url "$url" -c "$c" -d "$dur" -warmup "$warmup")
			fi
			kill "$pid"
			wait "$pid" 2>/dev/null || true
			printf 'run %s  c=%-3s %-9s %s\n' "$r" "$c" "$m" "$line"
		done
	done
done
