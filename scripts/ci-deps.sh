#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing, so a fresh machine
# (Debian 12, root, no Docker daemon) can run `make image-test`, `make rules-test`, `make bench`,
# `make observe`, `make test` (chromium, prometheus), ...
# Usage: scripts/ci-deps.sh COMMAND=PACKAGE ...   e.g. buildah=buildah promtool=prometheus
set -euo pipefail
missing=()
for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "ci-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
