#!/usr/bin/env bash
# The Dockerfile's steps, natively (no container engine runs here and no base image can be
# pulled): build the binary, lay out /opt/gatehouse in a staging root with the configuration
# read-only and owned by root, start `gatehouse serve` as the image's non-root user (uid
# 10001), wait for `gatehouse healthcheck`, get a token with the demo profile, check /readyz,
# check that nothing outside the data volume was written, stop with SIGTERM (exit 0).
#
#   scripts/container-smoke.sh               # release build, as the Dockerfile does
#   GATEHOUSE_SMOKE_PROFILE=dev scripts/container-smoke.sh   # reuse the test build (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${GATEHOUSE_SMOKE_PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
  cargo build --release --locked --bin gatehouse
  bin=$target_dir/release/gatehouse
else
  cargo build --locked --bin gatehouse
  bin=$target_dir/debug/gatehouse
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "container-smoke: needs root to drop to uid 10001 (as the image's USER does)" >&2
  exit 1
fi

root=$(mktemp -d /tmp/gatehouse-image.XXXXXX)
chmod 0755 "$root"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$root"
}
trap cleanup EXIT

# COPY --from=build ... /usr/local/bin/gatehouse; COPY config; COPY dlp-patterns
install -D -m 0755 "$bin" "$root/usr/local/bin/gatehouse"
app="$root/opt/gatehouse"
mkdir -p "$app"
cp -r config "$app/config"
cp -r dlp-patterns "$app/dlp-patterns"
# RUN install -d -o 10001 -g 10001 -m 0750 /opt/gatehouse/data
install -d -o 10001 -g 10001 -m 0750 "$app/data"
# Free ports instead of 8443/9901, so the smoke test runs beside anything else.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
cfg="$app/config/container/gatehouse.toml"
sed -i -e "s/^addr = \"0.0.0.0:8443\"/addr = \"127.0.0.1:$port\"/" \
  -e "s#^url = \"https://127.0.0.1:8443/v1/token\"#url = \"https://127.0.0.1:$port/v1/token\"#" \
  -e "s#^issuer = \"https://127.0.0.1:8443\"#issuer = \"https://127.0.0.1:$port\"#" \
  -e "s/^addr = \"127.0.0.1:9901\"/addr = \"127.0.0.1:$admin\"/" "$cfg"
# The configuration is read-only for the gateway's user.
chown -R root:root "$app/config" "$app/dlp-patterns"
chmod -R a-w "$app/config" "$app/dlp-patterns"
find "$root" -path "$app/data" -prune -o -print0 | xargs -0 stat -c '%n %s %Y' | sort >"$root.before"

as_user() { setpriv --reuid=10001 --regid=10001 --clear-groups -- env -C "$app" HOME=/nonexistent "$@"; }
gh="$root/usr/local/bin/gatehouse"

echo "== serve as uid 10001 (config read-only)"
# setpriv and env exec, so $! is the gateway's own pid.
setpriv --reuid=10001 --regid=10001 --clear-groups -- env -C "$app" HOME=/nonexistent \
  "$gh" serve --config config/container/gatehouse.toml --log-json >"$root.log" 2>&1 &
pid=$!
ok=
for _ in $(seq 1 150); do
  if as_user "$gh" healthcheck --config config/container/gatehouse.toml >/dev/null 2>&1; then ok=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.2
done
if [ -z "$ok" ]; then
  echo "container-smoke: the gateway did not become healthy" >&2
  cat "$root.log" >&2
  exit 1
fi
uid=$(ps -o uid= -p "$pid" | tr -d ' ')
[ "$uid" = 10001 ] || { echo "container-smoke: runs as uid $uid, expected 10001" >&2; exit 1; }

echo "== readiness, and a token for the demo partner"
as_user "$gh" healthcheck --ready --config config/container/gatehouse.toml
token=$(as_user "$gh" token --profile data/dev/demo-partner.json)
[ -n "$token" ] || { echo "container-smoke: no token" >&2; exit 1; }

echo "== nothing written outside the data volume"
find "$root" -path "$app/data" -prune -o -print0 | xargs -0 stat -c '%n %s %Y' | sort >"$root.after"
if ! diff -u "$root.before" "$root.after"; then
  echo "container-smoke: files outside /opt/gatehouse/data changed" >&2
  exit 1
fi

echo "== SIGTERM: drain and exit 0"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
rm -f "$root.before" "$root.after" "$root.log"
if [ "$status" -ne 0 ]; then
  echo "container-smoke: exit status $status after SIGTERM" >&2
  exit 1
fi
echo "container-smoke: ok"
