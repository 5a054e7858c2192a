#!/usr/bin/env bash
# Runs buf (from the @bufbuild/buf npm package, installed into tools/ on first use). Offline: no BSR deps.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=tools/node_modules/.bin/buf
if [ ! -x "$BUF" ]; then
  mkdir -p tools
  npm install --silent --prefix tools --no-audit --no-fund @bufbuild/buf@1.75.0 >/dev/null
fi
exec "$BUF" "$@"
