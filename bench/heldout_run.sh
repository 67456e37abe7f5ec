#!/bin/bash
# Wall time of one held-out run (5,000 items, latency 0, concurrency 64): the cost of what a held-out run
# adds (the exposure ledger committed before each send, the gate).  bench/heldout_run.sh [CODE_ROOT]
set -e
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd); D=$(mktemp -d); cd "$D"
export PYTHONPATH=$ROOT MOCK_KEY=x
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
mkdir -p suites/s
printf 'name: s\npublic_pool: items.jsonl\n' > suites/s/suite.yaml
$PY - <<'P'
import json
open("suites/s/items.jsonl","w").write("".join(json.dumps({"id": f"i{i}", "prompt": f"held-out question {i} about topic {i*7}"})+"\n" for i in range(5000)))
P
cp suites/s/items.jsonl pool.jsonl
$PY -m harness.cli vault init > /dev/null 2>&1
$PY -m harness.cli pool import pool.jsonl --suite s --heldout --activate > /dev/null 2>&1
$PY -m harness.cli mock-server --port 8791 > /dev/null 2>&1 &
MP=$!
sleep 2
printf 'suite: s\npool: heldout\nproviders:\n  a:\n    type: openai-compatible\n    base_url: http://127.0.0.1:8791/v1\n    api_key_env: MOCK_KEY\n    concurrency: 64\nmodels:\n  - {provider: a, model: m}\n' > run.yaml
/usr/bin/time -f "%e s wall" $PY -m harness.cli run run.yaml -q 2>&1 | tail -1
kill $MP
