#!/usr/bin/env bash
# The README's test command: installs what the tests need, type-checks, runs every test.
# Works on a fresh machine with nothing but the system Node/npm: `npm ci` brings Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
export PATH="$PWD/node_modules/.bin:$PATH"
echo "node $(node --version)"
tsc --noEmit -p .
report="$(mktemp)"
status=0
vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# One plain closing line that any CI reader understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' "$report" || true
rm -f "$report"
exit "$status"
