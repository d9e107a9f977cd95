#!/bin/sh
# Renders values.yaml with its secrets from Vault and deploys the chart with
# the result. The rendered values exist only for the duration of the helm call,
# in a private temporary folder (mode 0700, the file 0600).
#
#   VAULT_ADDR=https://vault.example.com VAULT_TOKEN=… ./deploy.sh [RELEASE [CHART]]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
release=${1:-myapp}
chart=${2:-oci://registry.example.com/charts/myapp}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
keyfill render "$here/values.yaml" -o "$tmp/rendered-values.yaml"
helm upgrade --install "$release" "$chart" -f "$tmp/rendered-values.yaml" --wait
