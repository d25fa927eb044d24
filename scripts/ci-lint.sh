#!/usr/bin/env bash
# `make ci-lint`: hadolint on the Dockerfile, shellcheck on the CI and deploy scripts, and the
# GitHub workflow and Dependabot config against their JSON schemas (bundled in check-jsonschema,
# offline). The workflow itself also runs the real actionlint on GitHub (deploy-checks job).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv-deploy/bin
echo "== hadolint Dockerfile"
"$bin/hadolint" Dockerfile
echo "== shellcheck"
"$bin/shellcheck" .ci/run scripts/*.sh
echo "== workflow and dependabot schemas"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
