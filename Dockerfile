# syntax=docker/dockerfile:1
# gatehouse container image: multi-stage build, small runtime, non-root, read-only root
# filesystem friendly. Configuration is read from /opt/gatehouse/config (mount your own,
# read-only); everything the gateway writes goes to the /opt/gatehouse/data volume.
# scripts/container-smoke.sh performs the same steps natively (no container engine needed).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin gatehouse \
 && install -D -m 0755 target/release/gatehouse /out/gatehouse

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gatehouse \
 && install -d -o 10001 -g 10001 -m 0750 /opt/gatehouse/data
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY config /opt/gatehouse/config
COPY dlp-patterns /opt/gatehouse/dlp-patterns
WORKDIR /opt/gatehouse
USER 10001:10001
VOLUME ["/opt/gatehouse/data"]
# 8443: partners (HTTPS). 9901: admin listener (loopback inside the container by default;
# see docs/deploy.md before publishing it).
EXPOSE 8443 9901
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["gatehouse", "healthcheck", "--config", "/opt/gatehouse/config/container/gatehouse.toml"]
ENTRYPOINT ["gatehouse"]
CMD ["serve", "--config", "/opt/gatehouse/config/container/gatehouse.toml", "--log-json"]
