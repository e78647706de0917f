#!/usr/bin/env bash
# Compares two commits on this machine: builds each in a temporary git
# worktree and alternates their runs of matrix.sh (A, B, A, B, ...), so that
# a drift in the machine's speed (a shared VM host) falls on both alike,
# then prints the medians of each side.
#
#   cmd/latchkey-bench/ab.sh REV_A REV_B OUT [DB] [ALGS] [CONCS]
#
#   REV_A, REV_B  any git revision (e.g. main~1 HEAD)
#   DB            sqlite (default) or postgres
#   ALGS          "ES256" (default); as matrix.sh
#   CONCS         "16 64" (default)
#   env           RUNS=3 (per side and concurrency), DUR, WARMUP, MODE,
#                 PORT, PG, NICE as matrix.sh; ENV_A, ENV_B: SERVE_ENV of
#                 each side (compare two settings of one build:
#                 ab.sh HEAD HEAD OUT with ENV_A=... ENV_B=...)
#
# Each side's results land in OUT/A and OUT/B (one directory per run).
set -euo pipefail
a=${1:?usage: ab.sh REV_A REV_B OUT [DB] [ALGS] [CONCS]}
b=${2:?usage: ab.sh REV_A REV_B OUT [DB] [ALGS] [CONCS]}
out=${3:?usage: ab.sh REV_A REV_B OUT [DB] [ALGS] [CONCS]}
db=${4:-sqlite} algs=${5:-ES256} concs=${6:-"16 64"}
runs=${RUNS:-3} mode=${MODE:-refresh}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

trees=()
cleanup() {
  for t in "${trees[@]}"; do git -C "$root" worktree remove --force "$t" 2>/dev/null || true; done
}
trap cleanup EXIT
: >"$out/REVS"
for rev in "$a" "$b"; do
  t=$(mktemp -d)
  rmdir "$t" # git worktree add creates it
  git -C "$root" worktree add --detach "$t" "$rev" >/dev/null 2>&1
  trees+=("$t")
  echo "$rev $(git -C "$t" rev-parse --short HEAD)" >>"$out/REVS"
done

sides=(A B)
envs=("${ENV_A:-}" "${ENV_B:-}")
for r in $(seq 1 "$runs"); do
  for c in $concs; do
    for i in 0 1; do
      echo "== run $r c=$c side ${sides[$i]}" >&2
      RUNS=1 SERVE_ENV="${envs[$i]}" "${trees[$i]}/cmd/latchkey-bench/matrix.sh" "$out/${sides[$i]}/run$r-c$c" "$db" "$algs" "$c" >/dev/null
    done
  done
done

tool=$out/A/run1-$(set -- $concs; echo "c$1")/bin/latchkey-bench
for i in 0 1; do
  echo "== ${sides[$i]}: $(sed -n "$((i + 1))p" "$out/REVS")${envs[$i]:+ with ${envs[$i]}}"
  "$tool" summarize "$out/${sides[$i]}"/run*/"$mode"-*.json
done | tee "$out/SUMMARY"
