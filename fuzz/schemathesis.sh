#!/usr/bin/env bash
# Bounded fuzzing of the REST API from its own OpenAPI document, with schemathesis (from
# PyPI, into target/fuzz-venv on first use). Starts the service on the embedded store with
# the test configuration on a free loopback port, then:
#   1. every implemented operation: no 5xx at all, and every answer as documented
#      (status, content type, body schema);
#   2. every unimplemented operation: the documented 501, in the documented body.
# FUZZ_EXAMPLES (default 25) bounds the examples per operation. Exits non-zero on any
# failure; the service's log is printed then.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${FUZZ_EXAMPLES:-25}
venv=${FUZZ_VENV:-target/fuzz-venv}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

cargo build -q -p factors
binary=${CARGO_TARGET_DIR:-target}/debug/factors
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export FACTORS_ENV=test FACTORS_CONFIG_DIR=$PWD/config
FACTORS__DATABASE__URL="sqlite://$work/fuzz.db" FACTORS__SERVER__ADDR="127.0.0.1:$port" \
  FACTORS__LOG__FILTER=warn "$binary" >"$work/service.log" 2>&1 &
service=$!
cleanup() { kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

base="http://127.0.0.1:$port"
python3 - "$base/readyz" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("factors did not become ready")
PY
token=$("$binary" token mint --sub fuzz --org org-a --role IAM_OWNER)

# schemathesis keeps a cache in its working folder: the run's own, not the checkout.
venv=$(cd "$venv" && pwd)
cd "$work"
status=0
"$venv/bin/schemathesis" run "$base/openapi.json" -H "Authorization: Bearer $token" \
  --exclude-tag unimplemented --phases examples,fuzzing --max-examples "$examples" --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  || status=1
"$venv/bin/schemathesis" run "$base/openapi.json" -H "Authorization: Bearer $token" \
  --include-tag unimplemented --phases examples,fuzzing --max-examples 3 --seed 1 \
  --checks status_code_conformance,content_type_conformance,response_schema_conformance \
  || status=1
if [ "$status" -ne 0 ]; then
  echo "== the service's log"
  cat "$work/service.log"
fi
exit "$status"
