#!/usr/bin/env bash
# The README's main command: installs what is missing, then runs `fabric demo`: a local mesh of
# Shuttle daemons (separate processes on 127.0.0.1) that places and runs jobs, loses its leader to
# SIGKILL and finishes the jobs anyway, then stops everything it started. Needs nothing but npm
# (no Docker, no CRIU). The simulator is `npm run sim`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
export PATH="$PWD/node_modules/.bin:$PATH"
exec node cli/main.ts demo "$@"
