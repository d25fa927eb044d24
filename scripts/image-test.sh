#!/usr/bin/env bash
# `make image-test`: lint the Dockerfile, build the service image without a Docker daemon
# (buildah, vfs storage, chroot isolation, host network), then run it on loopback against a
# local Redis and check it (scripts/image_smoke.py).
#
# No registry is reachable here, so unless PYTHON_BASE names an image already in local storage
# (or IMAGE_TEST_PULL=1 allows pulling the Dockerfile's pinned base), the base is assembled
# from Debian bookworm by scripts/image-base.sh. The host's CA bundle is bind-mounted for pip,
# so the build also works behind a TLS-inspecting proxy; it is not part of any layer.
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
storage=(--storage-driver "$STORAGE_DRIVER")
sha=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image=${IMAGE:-localhost/recsys-service:${sha:0:12}}

echo "== hadolint"
.venv-deploy/bin/hadolint Dockerfile

base_args=()
if [ -n "${PYTHON_BASE:-}" ]; then
    base_args=(--build-arg "PYTHON_BASE=$PYTHON_BASE")
elif [ "${IMAGE_TEST_PULL:-0}" != 1 ]; then
    PYTHON_BASE=localhost/recsys-python-base:3.11-bookworm
    echo "== base image $PYTHON_BASE"
    scripts/image-base.sh "$PYTHON_BASE"
    base_args=(--build-arg "PYTHON_BASE=$PYTHON_BASE" --pull=never)
fi

ca=/etc/ssl/certs/ca-certificates.crt
echo "== build $image (service target)"
start=$(date +%s)
buildah "${storage[@]}" build --isolation chroot --network host --layers \
    --format docker --target service \
    --volume "$ca:$ca:ro" \
    "${base_args[@]}" \
    --build-arg "GIT_SHA=$sha" \
    --tag "$image" .
echo "   built in $(( $(date +%s) - start )) s"

echo "== run and check"
PYTHONPATH=. .venv/bin/python scripts/image_smoke.py "$image"
