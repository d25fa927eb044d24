#!/usr/bin/env bash
# Assemble a local Python 3.11 base image from Debian bookworm with debootstrap, for building
# the Dockerfile where no registry is reachable (this sandbox, air-gapped CI). Real CI builds
# against the pinned docker.io/library/python base instead (see the Dockerfile's PYTHON_BASE).
#
# The image has what the Dockerfile relies on in the official image: python3 (3.11) with venv,
# useradd (passwd), CA certificates. Built once per storage; later runs find it and return at once.
# Usage: scripts/image-base.sh IMAGE_NAME
set -euo pipefail
image=${1:-localhost/recsys-python-base:3.11-bookworm}
storage=(--storage-driver "${STORAGE_DRIVER:-vfs}")
if podman "${storage[@]}" image exists "$image"; then
    echo "image-base: $image already present"
    exit 0
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /var/tmp/recsys-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "image-base: debootstrap bookworm into $rootfs (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" "$mirror" >/dev/null
chmod 755 "$rootfs"  # mktemp made it 0700: it becomes the image's /
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
chroot "$rootfs" python3 -c "import venv, ssl"  # fail here, not in the build
tar -C "$rootfs" -c . | podman "${storage[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$image" >/dev/null
echo "image-base: built $image"
