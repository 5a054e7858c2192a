#!/usr/bin/env bash
# Builds the browser UI (gateway/web) into gateway/web/dist/index.html, one self-contained file
# that Envoy serves. Quick no-op when nothing changed.
#   1. npm ci when node_modules is missing or package-lock.json changed since the last install;
#   2. regenerates the TypeScript client (src/gen, committed) with buf + local protoc-gen-es when
#      a .proto changed (`--check` instead fails if src/gen is stale, for CI);
#   3. type-checks and builds when any input is newer than dist/index.html.
set -euo pipefail
cd "$(dirname "$0")/../gateway/web"
ROOT=../..
check=false
[ "${1:-}" = "--check" ] && check=true

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! command -v npm >/dev/null || [ "$node_major" -lt 20 ]; then
  # The API, gRPC and the CLI work without the UI; Envoy then serves a page saying how to build it.
  echo "build-ui: Node.js 20+ with npm is needed to build the browser UI (found: ${node_major}); skipping it" >&2
  $check && exit 1
  exit 0
fi

stamp=node_modules/.package-lock.stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "build-ui: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

protos=$(find "$ROOT/protos" "$ROOT/third_party/googleapis" -name '*.proto' | sort)
gen_stamp=src/gen/.protos.sha256
want=$( (cat buf.gen.yaml "$ROOT/buf.yaml"; for f in $protos; do echo "$f"; cat "$f"; done) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$gen_stamp" 2>/dev/null)" != "$want" ]; then
  if $check; then
    echo "build-ui: gateway/web/src/gen is stale: run scripts/build-ui.sh and commit src/gen" >&2
    exit 1
  fi
  echo "build-ui: generating src/gen from protos"
  node_modules/.bin/buf generate
  echo "$want" > "$gen_stamp"
fi
$check && { echo "build-ui: src/gen is current"; exit 0; }

out=dist/index.html
if [ -f "$out" ] && [ -z "$(find src index.html vite.config.ts tsconfig.json package-lock.json -newer "$out" -print -quit)" ]; then
  exit 0
fi
echo "build-ui: building $PWD/$out"
node_modules/.bin/tsc --noEmit -p .
node_modules/.bin/vite build --logLevel warn
echo "build-ui: built $PWD/$out ($(wc -c < "$out") bytes)"
