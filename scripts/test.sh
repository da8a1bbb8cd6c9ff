#!/usr/bin/env bash
# The README's test command: installs what the tests need (npm packages, Docker, CRIU), type-checks,
# runs every test.
# Works on a fresh machine with nothing but the system Node/npm: `npm ci` brings Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
export PATH="$PWD/node_modules/.bin:$PATH"
echo "node $(node --version)"
# Docker's engine and CRIU for the runtime tests: installed and started when missing, quick when
# present. Once the platform can have them, the tests that need them must run (never skip quietly).
deps_status=0
bash scripts/install-runtime-deps.sh || deps_status=$?
case "$deps_status" in
  0) export FABRIC_REQUIRE_RUNTIMES=1 ;;
  3) echo "tests that need Docker or CRIU will be SKIPPED: this platform cannot have them (see above)" ;;
  # Not required then: FABRIC_REQUIRE_RUNTIMES=1 would turn the checkpoint tests' skips into failures.
  4) echo "tests that need CRIU checkpoints will be SKIPPED: CRIU's dump/restore probe failed on this boot (see above)" ;;
  *) echo "install-runtime-deps.sh failed (exit $deps_status): the tests that need Docker or CRIU will fail"; export FABRIC_REQUIRE_RUNTIMES=1 ;;
esac
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
