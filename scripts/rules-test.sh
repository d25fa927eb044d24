#!/usr/bin/env bash
# `make rules-test`: the Prometheus side, offline. Checks the scrape config and the alert rules
# (promtool check), runs every alert's unit test (promtool test rules), checks that the Grafana
# dashboard JSON is generated from monitoring/dashboard.py, and parses every panel query with
# promtool (as recording rules in a scratch rule file).
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=$(command -v promtool)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== promtool check config monitoring/prometheus.yml"
"$promtool" check config monitoring/prometheus.yml
echo "== promtool test rules monitoring/tests/alerts_test.yml"
"$promtool" test rules monitoring/tests/alerts_test.yml

echo "== dashboard: generated JSON up to date, every panel query parses"
.venv-deploy/bin/python monitoring/dashboard.py --check
{
    echo "groups:"
    echo "  - name: dashboard-queries"
    echo "    rules:"
    n=0
    while IFS= read -r expr; do
        n=$((n + 1))
        printf '      - record: dashboard:query_%d\n        expr: %s\n' "$n" \
            "$(printf '%s' "$expr" | .venv-deploy/bin/python -c 'import json,sys; print(json.dumps(sys.stdin.read()))')"
    done < <(.venv-deploy/bin/python monitoring/dashboard.py --exprs)
} > "$tmp/dashboard-queries.yml"
"$promtool" check rules "$tmp/dashboard-queries.yml"
