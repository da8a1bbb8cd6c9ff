#!/usr/bin/env bash
# `npm run sim`: installs what is missing, then runs the simulator on the embedded default: 25 peers
# running the real consensus core on a simulated network under every fault it knows.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
export PATH="$PWD/node_modules/.bin:$PATH"
exec node cli/main.ts sim --nodes 25 --voters 5 --seeds 2 --duration 60s --faults all "$@"
