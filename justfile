# Recipes for local development. `just` is a convenience: every recipe is a plain command
# you can run without it. Install with `cargo install just`.

set dotenv-load := false

# List the recipes.
default:
    @just --list

# Start PostgreSQL, Redis and factors in containers and wait until factors is healthy, on
# 127.0.0.1:${FACTORS_PORT:-8080} (needs Docker with compose v2; see docker-compose.yml).
up:
    docker compose up --build --wait

# Stop the containers; their volumes stay (`docker compose down -v` drops them too).
down:
    docker compose down

# Run the service on its default store, the SQLite file data/factors.db (created and migrated).
run:
    cargo run -p factors

# Run every test suite (PostgreSQL and Redis from TEST_DATABASE_URL / TEST_REDIS_URL, else
# Docker, else the local servers; SQLite suites use temporary files).
test:
    cargo test --workspace

# The store contract and the PostgreSQL end-to-end suites through PgBouncer in transaction
# mode (database.pooler = "transaction"); each test starts a PgBouncer of its own from the
# `pgbouncer` binary (apt-get install pgbouncer).
test-pooler:
    cargo test -p factors-adapters-postgres --test pooler -- --ignored
    FACTORS_TEST_POOLER=pgbouncer cargo test -p factors-e2e --test e2e on_postgres

# Clippy with warnings as errors, and the format check.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Apply the database migrations and exit.
migrate:
    cargo run -p factors -- migrate

# Mint a development token: just token alice org-a ORG_USER_MANAGER
token sub org *roles:
    cargo run -q -p factors -- token mint --sub {{sub}} --org {{org}} $(for r in {{roles}}; do printf -- '--role %s ' "$r"; done)

# Benchmark: seed PostgreSQL, load the service with wrk, measure PostgreSQL's own limit with
# pgbench on the service's statements, profile with perf, write bench/REPORT.md.
# Needs wrk, pgbench and perf (installed with apt-get when run as root): just bench --quick
bench *args:
    cargo run --release -p factors-bench -- {{args}}

# Fuzz the REST API from its OpenAPI document with schemathesis (installed from PyPI into
# target/fuzz-venv on first use): no 5xx but the documented 501, every answer as
# documented. FUZZ_EXAMPLES bounds the examples per operation (default 25).
fuzz:
    bash fuzz/schemathesis.sh

# A production topology on this machine (deploy/local-ha/ha.sh; root, installs Patroni,
# etcd and HAProxy with apt-get when missing): PostgreSQL 15 x3 under Patroni in network
# namespaces, HAProxy, Redis with a replica and three Sentinels, two factors replicas
# behind HAProxy on 127.0.0.1:8090.
ha-up:
    bash deploy/local-ha/ha.sh up

# Stop every process of the topology and remove its namespaces and files.
ha-down:
    bash deploy/local-ha/ha.sh down

# The failover test against the topology (just ha-up first): the leader killed, the leader
# cut off, the Redis master killed, `rounds` times each; writes bench/FAILOVER.md.
chaos rounds="3":
    cargo run -p factors-chaos -- --rounds {{rounds}}

# The Prometheus recording rules and alerts: checked and unit-tested with promtool
# (Debian's prometheus package).
rules:
    cd deploy/prometheus && promtool check rules factors.rules.yml && promtool test rules factors.rules.test.yml

# Render the Kubernetes manifests and run checkov on them and on the Dockerfile.
k8s-check:
    bash deploy/kubernetes/check.sh

# A CycloneDX SBOM (JSON, spec 1.5) of the factors binary's dependencies, written to
# target/sbom/factors.cdx.json (needs `cargo install cargo-cyclonedx`).
sbom:
    bash deploy/sbom.sh

# Run CI locally, as CI does.
ci:
    bash .ci/run
