#!/usr/bin/env bash
# `make k8s-check`: the Kubernetes manifests, offline (no cluster). Every base resource and
# each overlay's rendered output is validated with `kubernetes-validate --strict` (schemas
# bundled in the package; unknown fields are errors) against K8S_VERSION. Overlays are rendered
# with kustomize, or kubectl's built-in kustomize, whichever is installed; without either only
# the base is validated (said loudly). k8s/airflow/values.yaml is a Helm values file, not a
# manifest: tests/deploy/test_deploy.py checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_VERSION=${K8S_VERSION:-1.34.0}
validate=(.venv-deploy/bin/kubernetes-validate --strict --quiet -k "$K8S_VERSION")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== the validator rejects unknown fields (self-check)"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {}\nbogusField: 1\n' > "$tmp/bad.yaml"
if "${validate[@]}" "$tmp/bad.yaml" >/dev/null 2>&1; then
    echo "kubernetes-validate accepted an unknown field: not strict" >&2
    exit 1
fi

echo "== base resources, Kubernetes $K8S_VERSION, strict"
mapfile -t files < <(find k8s/base -name '*.yaml' ! -name kustomization.yaml | sort)
"${validate[@]}" "${files[@]}"
echo "   ${#files[@]} files valid"

if command -v kustomize >/dev/null 2>&1; then
    render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
    render=(kubectl kustomize)
else
    echo "!! neither kustomize nor kubectl is installed: overlays NOT rendered or validated" >&2
    exit 0
fi
for overlay in k8s/overlays/*/; do
    name=$(basename "$overlay")
    "${render[@]}" "$overlay" > "$tmp/$name.yaml"
    "${validate[@]}" "$tmp/$name.yaml"
    echo "== overlay $name: $(grep -c '^kind:' "$tmp/$name.yaml") resources rendered with ${render[*]}, valid"
done
