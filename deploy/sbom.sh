#!/usr/bin/env bash
# A CycloneDX SBOM (JSON, spec 1.5) of what the factors binary is built from: every crate
# it links, with versions, licenses and checksums, build-time dependencies left out.
# Written to target/sbom/factors.cdx.json. Needs cargo-cyclonedx (`cargo install
# cargo-cyclonedx --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo cyclonedx writes one file beside every package of the workspace; the binary's is kept.
cargo cyclonedx --manifest-path crates/factors/Cargo.toml --format json --spec-version 1.5 \
  --describe binaries --no-build-deps --quiet
mkdir -p target/sbom
mv crates/factors/factors_bin.cdx.json target/sbom/factors.cdx.json
find crates tests -maxdepth 2 -name '*.cdx.json' -delete
echo "target/sbom/factors.cdx.json"
