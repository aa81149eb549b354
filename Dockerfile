# factors: a release build in a small Debian image, run as a non-root user.
#
#   docker build -t factors .
#
# The image runs in production mode (FACTORS_ENV=production), which refuses the development
# secrets and the logging SMS sender. It needs a database, the codes' HMAC key, the keys
# that sign your tokens (a JWKS file, or auth.public_keys) and an SMS provider:
#
#   docker run -d --name factors -p 8080:8080 --stop-timeout 40 \
#     -e FACTORS__DATABASE__URL=postgres://factors:secret@db.example.com:5432/factors \
#     -e FACTORS__CODES__HMAC_KEY="$(openssl rand -base64 48)" \
#     -e FACTORS__AUTH__ISSUER=https://idp.example.com -e FACTORS__AUTH__AUDIENCE=factors \
#     -e FACTORS__AUTH__JWKS_FILE=/etc/factors/jwks.json -v "$PWD/jwks.json:/etc/factors/jwks.json:ro" \
#     -e FACTORS__SMS__PROVIDER=webhook -e FACTORS__SMS__WEBHOOK__URL=https://sms.example.com/factors \
#     -e FACTORS__SMS__WEBHOOK__SECRET="$(openssl rand -base64 48)" \
#     factors
#
# (Keep the HMAC key: a new one voids the codes in flight. Production does not create the
# database: create it first, or add -e FACTORS__DATABASE__CREATE_DATABASE=true.)
#
# To try it in development mode (the embedded SQLite store in /app/data, secrets generated
# there on first start, SMS only logged), on the host's loopback only:
#
#   docker run --rm --network host -e FACTORS_ENV=development -e FACTORS__SERVER__ADDR=127.0.0.1:8080 factors
#   docker run --rm --network host -e FACTORS_ENV=development factors token mint --sub admin --org org-a --role IAM_OWNER
#
# (Development secrets are refused on a non-loopback address unless
# FACTORS__AUTH__ALLOW_DEVELOPMENT_SECRET_OFF_LOOPBACK=true; --network host with 127.0.0.1
# needs neither. Each `docker run --rm` starts with an empty /app/data: mount a volume
# there, -v factors-data:/app/data, for the minted token to match the server's secret.)
#
# or all of it, with PostgreSQL and Redis: `docker compose up --build --wait` (see
# docker-compose.yml).
#
# Stopping: after SIGTERM, factors lets requests in flight finish for up to
# server.shutdown_timeout (30s). Docker's default stop timeout is 10s, after which it
# kills the process, so give it more: `--stop-timeout 40` above, `docker stop -t 40`, or
# compose's stop_grace_period.
#
# Health: the image has no curl; `factors healthcheck` asks the service's /readyz.
#
# The base images are build arguments, for mirrors and air-gapped registries:
#   docker build --build-arg RUST_IMAGE=registry.example.com/rust:1.95.0-bookworm \
#                --build-arg RUNTIME_IMAGE=registry.example.com/debian:bookworm-slim -t factors .

# checkov:skip=CKV_DOCKER_7: the base images are build arguments whose defaults pin versions (rust:1.95.0-bookworm, debian:bookworm-slim); checkov does not resolve them
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# The workspace's manifests, with every Rust file replaced by an empty stub. It changes only
# when a manifest does or a file is added or removed, so the dependency layer below is
# rebuilt only then, not on every change to the code.
FROM ${RUST_IMAGE} AS plan
WORKDIR /src
COPY . .
RUN printf '#![allow(dead_code)]\nfn main() {}\n' >/tmp/stub.rs \
    && find . -type f ! -name Cargo.toml ! -name Cargo.lock ! -name rust-toolchain.toml ! -name '*.rs' -delete \
    && find . -name '*.rs' -exec cp /tmp/stub.rs {} ';'

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY --from=plan /src ./
# The dependencies, compiled once for as long as the manifests and Cargo.lock stay the same.
RUN cargo build --release --locked -p factors
# The real code; the build needs config/ (embedded defaults), migrations/ (embedded by
# sqlx::migrate!) and proto/ (compiled by crates/api-grpc/build.rs). Touching the sources
# makes them newer than the stubs compiled above, whatever times COPY gave them.
COPY . .
RUN find crates tests -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p factors \
    && install -D target/release/factors /out/factors

FROM ${RUNTIME_IMAGE}
# No packages to install: TLS to Postgres and to the SMS providers uses rustls with the
# webpki roots built into the binary. /app/data is where development keeps what it
# generates; a volume mounted there takes its owner from the image.
RUN groupadd --system --gid 10001 factors \
    && useradd --system --uid 10001 --gid factors --home-dir /app --no-create-home factors \
    && mkdir -p /app/data && chown factors:factors /app/data
COPY --from=build /out/factors /usr/local/bin/factors
COPY config /app/config
WORKDIR /app
ENV FACTORS_ENV=production \
    FACTORS_CONFIG_DIR=/app/config \
    FACTORS__SERVER__ADDR=0.0.0.0:8080
EXPOSE 8080
USER factors
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["factors", "healthcheck"]
ENTRYPOINT ["factors"]
CMD ["serve"]
