# Sourced by matrix.sh and wrk/run.sh (not run on its own): builds
# latchkey and latchkey-bench from the checkout at $root into $out/bin
# and sets up a benchmark server's environment on loopback port
# ${PORT:-18080}: a fresh master key, the bench client's secret and the
# bench user's password.
#
# In:  root (the checkout), out (an absolute directory).
# Out: lk, bench (the binaries), port, secret; LATCHKEY_MASTER_KEY,
#      LATCHKEY_ISSUER, LATCHKEY_ADDR, LATCHKEY_BENCH_PASSWORD exported.
mkdir -p "$out/bin"
(cd "$root" && go build -o "$out/bin/latchkey" ./cmd/latchkey && go build -o "$out/bin/latchkey-bench" ./cmd/latchkey-bench)
lk=$out/bin/latchkey bench=$out/bin/latchkey-bench
port=${PORT:-18080}
export LATCHKEY_MASTER_KEY LATCHKEY_ISSUER=http://127.0.0.1:$port LATCHKEY_ADDR=127.0.0.1:$port
LATCHKEY_MASTER_KEY=$(openssl rand -base64 32)
secret=bench-secret-$(openssl rand -hex 16)
export LATCHKEY_BENCH_PASSWORD="bench password $(openssl rand -hex 8)"
