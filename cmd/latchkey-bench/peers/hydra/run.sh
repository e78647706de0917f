#!/usr/bin/env bash
# Measures Ory Hydra v2.3.0 with Latchkey's load tool, like
# cmd/latchkey-bench/matrix.sh does for Latchkey: Hydra pinned to CPU 0, the
# tool to CPU 1, refresh grants with rotation and a new ID token, one run at
# a time. Hydra stores in PostgreSQL (database hydra_bench, recreated); its
# default build has no SQLite driver (that needs cgo and a build tag).
#
#   cmd/latchkey-bench/peers/hydra/run.sh OUT
#
# It builds Hydra from the Go module proxy into OUT/bin on first use (a
# throwaway module with `go get -tool github.com/ory/hydra/v2@v2.3.0`;
# several minutes), the load tool, and runs loginapp.go, the login and
# consent app Hydra needs (Hydra has no sign-in pages of its own).
#
#   env RUNS=3 DUR=10s WARMUP=3s CONCS="16 64"
#       PG=postgres://postgres@127.0.0.1:5432 (trust auth)
#
# Hydra runs with its defaults (`serve all --dev` for plain HTTP on
# loopback): opaque access tokens, RS256 ID tokens, client secrets hashed
# with PBKDF2, refresh tokens rotated on use.
set -euo pipefail
out=${1:?usage: run.sh OUT}
runs=${RUNS:-3} dur=${DUR:-10s} warm=${WARMUP:-3s} concs=${CONCS:-"16 64"}
pgbase=${PG:-postgres://postgres@127.0.0.1:5432}
dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$dir/../../../.." && pwd)
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)
hydra=$out/bin/hydra
if [ ! -x "$hydra" ]; then
  mod=$(mktemp -d)
  # Hydra's go.mod replaces pop with Ory's fork; a dependency's replace
  # directives do not apply to the module that builds it, so it is repeated
  # here. (Its other replace, hydra-client-go => ./internal/httpclient,
  # points into a nested module that is not in the module zip; the proxy's
  # hydra-client-go v2.2.1 compiles.)
  (cd "$mod" && go mod init hydrabuild >/dev/null 2>&1 && go get -tool github.com/ory/hydra/v2@v2.3.0 >/dev/null 2>&1 &&
    go mod edit -replace github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b &&
    GOFLAGS=-mod=mod go build -o "$hydra" github.com/ory/hydra/v2)
  rm -rf "$mod"
fi
(cd "$root" && go build -o "$out/bin/latchkey-bench" ./cmd/latchkey-bench)
(cd "$dir" && go build -o "$out/bin/loginapp" loginapp.go)
bench=$out/bin/latchkey-bench

export HYDRA_BENCH_PASSWORD="bench password $(openssl rand -hex 8)"
export LATCHKEY_BENCH_PASSWORD=$HYDRA_BENCH_PASSWORD
secret=bench-secret-$(openssl rand -hex 16)
psql "$pgbase/postgres" -qc 'DROP DATABASE IF EXISTS hydra_bench' -c 'CREATE DATABASE hydra_bench' >/dev/null
export DSN="$pgbase/hydra_bench?sslmode=disable"
export SECRETS_SYSTEM=$(openssl rand -hex 32)
export URLS_SELF_ISSUER=http://127.0.0.1:4444 URLS_LOGIN=http://127.0.0.1:3001/login URLS_CONSENT=http://127.0.0.1:3001/consent
export SERVE_PUBLIC_HOST=127.0.0.1 SERVE_ADMIN_HOST=127.0.0.1
"$hydra" migrate sql -e --yes >"$out/migrate.log" 2>&1

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; true' EXIT
taskset -c 1 "$out/bin/loginapp" -addr 127.0.0.1:3001 -admin http://127.0.0.1:4445 >>"$out/loginapp.log" 2>&1 &
pids+=($!)
taskset -c 0 "$hydra" serve all --dev >>"$out/server.log" 2>&1 &
pid=$!
pids+=($pid)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:4444/health/ready >/dev/null && break; sleep 0.2; done
client=$("$hydra" create oauth2-client --endpoint http://127.0.0.1:4445 --format json \
  --name bench --secret "$secret" --grant-type authorization_code,refresh_token --response-type code \
  --scope openid,offline_access --redirect-uri http://localhost:9999/cb \
  --token-endpoint-auth-method client_secret_basic | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
[ -n "$client" ] || { echo "could not create the client" >&2; exit 1; }

{ echo "# $(date -u +%FT%TZ) nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "# $("$hydra" version 2>/dev/null | tr '\n' ' ')"
  echo "# runs=$runs dur=$dur warmup=$warm concs=$concs database=postgres"; } >"$out/MACHINE"

for c in $concs; do
  for r in $(seq 1 "$runs"); do
    echo "== hydra refresh c=$c run $r (load avg $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    taskset -c 1 "$bench" -issuer http://127.0.0.1:4444 -client-id "$client" -client-secret "$secret" \
      -redirect-uri http://localhost:9999/cb -username bench \
      -mode refresh -c "$c" -d "$dur" -warmup "$warm" -pid "$pid" -cpu-match 'postgres: .*hydra_bench' \
      -label "hydra postgres" -json >"$out/refresh-hydra-c$c-r$r.json"
  done
done
"$bench" summarize "$out"/refresh-hydra-*-r*.json | tee "$out/SUMMARY"
