# syntax=docker/dockerfile:1
#
# One image for every role of `heal`. The role is chosen by the arguments:
#
#   docker run heal:0.1.0                                   # all roles on one port (8080), embedded
#                                                           # PostgreSQL and in-process bus
#   docker run -e DATABASE_URL=… -e KAFKA_BOOTSTRAP_SERVERS=… heal:0.1.0 run --roles ingest
#                                                           # one role on its own port (ingest: 8082)
#   docker run … heal:0.1.0 migrate                         # apply the database migrations
#
# Build: docker build -t heal:0.1.0 .

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- builder: compiles the release binary (rdkafka builds librdkafka's C code, hence the C
# toolchain; zlib comes from the system, found through pkg-config) -------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The binary embeds scenarios/demo.toml (include_str!) and the SQL migrations.
COPY scenarios ./scenarios
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p heal --bin heal \
    && install -D -m 0755 target/release/heal /out/heal

# ---- runtime: Debian slim, CA certificates, curl for the health check, a non-root user ----------
FROM debian:12-slim AS runtime
# Keep in step with `USER` below and with runAsUser in k8s/ and helm/.
ARG HEAL_UID=10001
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${HEAL_UID}" heal \
    && useradd --system --uid "${HEAL_UID}" --gid heal --home-dir /var/lib/heal \
        --shell /usr/sbin/nologin heal \
    && install -d -o heal -g heal -m 0750 /var/lib/heal
COPY --from=builder /out/heal /usr/local/bin/heal
COPY scenarios /usr/share/heal/scenarios

# Settings the binary reads (see README, Configuration). Every variable named HEAL_* is read as a
# setting and an unknown one stops the process, so only real settings may carry that prefix.
# Monolithic mode listens on all interfaces in a container (the binary's default is loopback);
# per-role listeners bind 0.0.0.0 by default (bind_host).
ENV HEAL_HTTP_ADDR=0.0.0.0:8080 \
    HEAL_DATA_DIR=/var/lib/heal/data \
    HEAL_LOG_FORMAT=json \
    HOME=/var/lib/heal
# PROBE_PORT (not a heal setting) tells the health check which port to ask: 8080 in monolithic
# mode, or the role's port (generator 8081, ingest 8082, batch 8083, quality 8084, lineage 8085,
# aiops 8086, incidents 8087). docker-compose.yml sets its own check per role.
ENV PROBE_PORT=8080

WORKDIR /var/lib/heal
# Numeric, so Kubernetes can verify runAsNonRoot without resolving the name.
USER 10001:10001
EXPOSE 8080 8081 8082 8083 8084 8085 8086 8087
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${PROBE_PORT}/readyz\" || exit 1"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/heal"]
CMD ["run"]
