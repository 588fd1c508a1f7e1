#!/usr/bin/env bash
# Puts gatehouse beside nginx on this machine, both over TLS with the same certificate and the
# same files, and prints ratios (gatehouse / nginx):
#   1. large-object GET throughput (curl, SIZE_MIB, default 256), best of RUNS (default 3);
#   2. small-object (4 KiB) GET request rate with auth + policy + audit (wrk, DURATION s, CONNS);
#   3. large-object PUT throughput (curl -T, SIZE_MIB), best of RUNS: gatehouse stores, hashes
#      (MD5 ETag) and fsyncs before answering; nginx's WebDAV PUT writes a temp file and renames.
# The gateway uses the embedded fs store. Needs nginx and wrk (installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-256} RUNS=${RUNS:-3} DURATION=${DURATION:-10} CONNS=${CONNS:-32}

for tool in nginx wrk; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx wrk >/dev/null; }
done
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/gatehouse
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gport=$(free_port); nport=$(free_port)

mkdir -p "$work/config/partners" "$work/www"
cat > "$work/config/gatehouse.toml" <<TOML
data_dir = "data"
[listener]
addr = "127.0.0.1:$gport"
[token]
url = "https://127.0.0.1:$gport/v1/token"
issuer = "https://127.0.0.1:$gport"
[dev]
bootstrap = true
[stores.local]
type = "fs"
root = "data/objects"
[shares.demo]
store = "local"
bucket = "demo"
TOML
sed -e 's#../../data/dev#../data/dev#' config/partners/demo.toml > "$work/config/partners/demo.toml"
GATEHOUSE_LOG=warn $bin serve --config "$work/config/gatehouse.toml" 2>"$work/gatehouse.log" &
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$gport) 2>/dev/null && break; sleep 0.1; done
data="$work/config/data"
TOKEN=$($bin token --profile "$data/dev/demo-partner.json")
ca="$data/tls/ca.pem"

head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$work/www/big.bin"
head -c 4096 /dev/urandom > "$work/www/small.bin"
for f in big.bin small.bin; do
  curl -sf --cacert "$ca" -H "Authorization: Bearer $TOKEN" -T "$work/www/$f" "https://127.0.0.1:$gport/demo/$f" >/dev/null
done

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log $work/nginx-access.log;
  sendfile off;
  client_body_temp_path $work/upload-tmp;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $data/tls/server.pem;
    ssl_certificate_key $data/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $work/www;
    location /up/ { dav_methods PUT; create_full_put_path on; }
  }
}
NGINX
mkdir -p "$work/upload-tmp" "$work/www/up"
chmod 755 "$work"; chmod -R a+rX "$work/www"   # nginx workers run unprivileged
chmod 777 "$work/upload-tmp" "$work/www/up"
nginx -c "$work/nginx.conf"
sleep 0.5
for url in "https://127.0.0.1:$nport/small.bin" "https://127.0.0.1:$gport/demo/small.bin"; do
  code=$(curl -s --cacert "$ca" -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 200 ] || { echo "error: $url answered $code" >&2; exit 1; }
done

best_speed() { # url [header]
  local best=0 s
  for _ in $(seq "$RUNS"); do
    s=$(curl -s --cacert "$ca" ${2:+-H "$2"} -o /dev/null -w '%{speed_download}' "$1")
    best=$(python3 -c "print(max($best, $s))")
  done
  echo "$best"
}
g_big=$(best_speed "https://127.0.0.1:$gport/demo/big.bin" "Authorization: Bearer $TOKEN")
n_big=$(best_speed "https://127.0.0.1:$nport/big.bin")

best_upload() { # url [header]
  local best=0 s i=0
  for _ in $(seq "$RUNS"); do
    i=$((i + 1))
    s=$(curl -sf --cacert "$ca" ${2:+-H "$2"} -T "$work/www/big.bin" -o /dev/null -w '%{speed_upload}' "$1$i.bin")
    best=$(python3 -c "print(max($best, $s))")
  done
  echo "$best"
}
g_put=$(best_upload "https://127.0.0.1:$gport/demo/up/put" "Authorization: Bearer $TOKEN")
n_put=$(best_upload "https://127.0.0.1:$nport/up/put")

cat > "$work/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
rps() { # refuses to report a rate that includes error responses
  local out; out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "error: non-2xx responses under load:" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
g_rps=$(rps -s "$work/auth.lua" "https://127.0.0.1:$gport/demo/small.bin")
n_rps=$(rps "https://127.0.0.1:$nport/small.bin")

python3 - "$g_big" "$n_big" "$g_rps" "$n_rps" "$SIZE_MIB" "$g_put" "$n_put" <<'PY'
import sys
gb, nb, gr, nr, size, gp, np_ = map(float, sys.argv[1:])
print(f"large GET ({int(size)} MiB, TLS, HTTP/1.1):  gatehouse {gb/2**20:8.1f} MiB/s   nginx {nb/2**20:8.1f} MiB/s   ratio {gb/nb:.2f}")
print(f"small GET (4 KiB, TLS, wrk):            gatehouse {gr:8.0f} req/s   nginx {nr:8.0f} req/s   ratio {gr/nr:.2f}")
print(f"large PUT ({int(size)} MiB, TLS, HTTP/1.1):  gatehouse {gp/2**20:8.1f} MiB/s   nginx {np_/2**20:8.1f} MiB/s   ratio {gp/np_:.2f}")
PY
