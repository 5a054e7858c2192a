#!/usr/bin/env bash
# Fails when gen/ or gateway/hostcheck.pb differs from what `make protos` makes from protos/.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=${PY:-.venv/bin/python}
files=(protos/hostcheck/v1/*.proto)
mkdir -p "$tmp/gen"
$PY -m grpc_tools.protoc -I protos -I third_party/googleapis --python_out="$tmp/gen" --pyi_out="$tmp/gen" \
  --grpc_python_out="$tmp/gen" "${files[@]}"
touch "$tmp/gen/hostcheck/v1/__init__.py"
$PY -m grpc_tools.protoc -I protos -I third_party/googleapis --include_imports --include_source_info \
  --descriptor_set_out="$tmp/hostcheck.pb" "${files[@]}" google/rpc/status.proto google/rpc/error_details.proto
if ! diff -r -x __pycache__ "$tmp/gen/hostcheck" gen/hostcheck >/dev/null || ! cmp -s "$tmp/hostcheck.pb" gateway/hostcheck.pb; then
  echo "generated code is stale: run 'make protos' and commit the result" >&2
  diff -r -x __pycache__ -q "$tmp/gen/hostcheck" gen/hostcheck >&2 || true
  exit 1
fi
echo "generated code is up to date"
