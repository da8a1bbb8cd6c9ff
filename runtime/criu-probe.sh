#!/usr/bin/env bash
# Whether CRIU can really checkpoint on this boot: a real `criu dump` and `criu restore` of a tiny
# process, each bounded. `criu check` is not enough: on some boots of our kernel it says "Looks good."
# while every dump hangs for good (the kernel logs a general protection fault in criu's
# kdat_compatible_cr, and the dump never ends).
# The verdict is recorded once per boot (keyed by /proc/sys/kernel/random/boot_id, the CRIU binary
# and its version) in a JSON file that runtime/criu.ts reads (probeCriu: the runtimes, the tests and
# `fabric doctor`); scripts/install-runtime-deps.sh runs it after installing CRIU, and probeCriu runs
# it when this boot has no verdict yet. One probe at a time (flock); the others wait and read it.
#
# Usage: criu-probe.sh [--force] CRIU_PATH    (--force: probe again even if this boot has a verdict)
# Prints the verdict (one JSON line) on stdout, what it did on stderr.
# Exit status: 0 dump and restore work; 1 they do not (CRIU must count as unavailable); 2 could not
# probe (bad usage, not root, lock held too long, the test process did not start): nothing recorded.
#
# The test process mirrors a process-runtime job: `unshare --pid --fork --kill-child setsid` (its own
# PID namespace, leading its own session), stdio on /dev/null, dumped and restored with the flags
# runtime/process-runtime.ts passes. Only processes this script started are ever killed.
set -uo pipefail

verdict_file="${FABRIC_CRIU_PROBE_FILE:-/run/fabric/criu-probe.json}"
step_timeout_s="${FABRIC_CRIU_PROBE_STEP_TIMEOUT_S:-20}"
# A probe holding the lock takes at most two steps (plus their kill grace and the set-up).
lock_wait_s=$((2 * step_timeout_s + 20))
# The test process sleeps this long; its command line identifies it before any kill.
sleep_s=600
verdict_format=1

say() { echo "criu-probe: $*" >&2; }

force=0
if [ "${1:-}" = --force ]; then force=1; shift; fi
[ $# = 1 ] || { say "usage: criu-probe.sh [--force] CRIU_PATH"; exit 2; }
criu="$1"
[ -x "$criu" ] || { say "$criu is not executable"; exit 2; }
[ "$(id -u)" = 0 ] || { say "not root: CRIU cannot dump other processes"; exit 2; }

boot_id="$(cat /proc/sys/kernel/random/boot_id)" || { say "cannot read the boot id"; exit 2; }
criu_version="$("$criu" --version 2>/dev/null </dev/null | sed -n 's/^Version: *\([^ ]*\).*/\1/p' | head -n1)"
[ -n "$criu_version" ] || { say "$criu --version said nothing usable"; exit 2; }

json_escape() { printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'; }
# A string field of our one-line JSON (escaped quotes and backslashes left escaped).
json_field() { sed -n "s/.*\"$1\":\"\\(\\([^\"\\\\]\\|\\\\.\\)*\\)\".*/\\1/p" <<<"$2"; }

# This boot's verdict for this CRIU, if recorded; exits with it.
use_recorded() {
  local recorded
  recorded="$(cat "$verdict_file" 2>/dev/null)" || return 0
  [[ "$recorded" == *"\"format\":$verdict_format,"* ]] || return 0
  [ "$(json_field bootId "$recorded")" = "$boot_id" ] || return 0
  [ "$(json_field criuPath "$recorded")" = "$criu" ] || return 0
  [ "$(json_field criuVersion "$recorded")" = "$criu_version" ] || return 0
  echo "$recorded"
  if [[ "$recorded" == *'"ok":true'* ]]; then
    say "this boot's verdict (probed $(json_field probedAt "$recorded")): dump and restore work"
    exit 0
  fi
  say "this boot's verdict (probed $(json_field probedAt "$recorded")): $(json_field reason "$recorded")"
  exit 1
}

mkdir -p "$(dirname "$verdict_file")" || { say "cannot create $(dirname "$verdict_file")"; exit 2; }
[ "$force" = 1 ] || use_recorded
exec 8>>"$verdict_file.lock"
flock -w "$lock_wait_s" 8 || { say "another probe held $verdict_file.lock for ${lock_wait_s}s"; exit 2; }
# Whoever held the lock may have just recorded it.
[ "$force" = 1 ] || use_recorded

work="$(mktemp -d /tmp/fabric-criu-probe.XXXXXX)" || { say "mktemp failed"; exit 2; }
mkdir -p "$work/images" "$work/restore"
launcher_pid=''   # our child: unshare, or the test process itself without a namespace
tree_pid=''       # the dumped tree's root (unshare's child in a namespace)
restore_pid=''    # our child: timeout running criu restore
restored_pid=''   # the restored tree's root
detail=''         # what else the verdict says about a failure (a hung step's last log line)

# Kills PID only if it is still what we started: our own child, or a process running our sleep.
is_ours() {
  local pid="$1" stat cmdline
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "$(echo "$stat" | cut -d' ' -f2)" = "$$" ] && return 0
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  [ "$cmdline" = "sleep $sleep_s " ]
}
kill_ours() { local pid; for pid in "$@"; do is_ours "$pid" && kill -KILL "$pid" 2>/dev/null; done; return 0; }
cleanup() {
  kill_ours "$restored_pid" "$restore_pid" "$tree_pid" "$launcher_pid"
  { wait; } 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# CRIU's error lines, as runtime/criu.ts quotes them (the RLIMIT_NOFILE complaint is harmless).
log_errors() {
  grep -hE "Error|error:|Can't|failed" "$@" 2>/dev/null | grep -v RLIMIT_NOFILE | sed 's/^([0-9.]*) *//' | tail -n 8 | paste -sd';' - | sed 's/;/; /g'
}

started_ms="$(now_ms)"
probed_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

record() {
  local ok="$1" failed="$2" reason="$3" line
  line="{\"format\":$verdict_format,\"ok\":$ok,\"bootId\":\"$boot_id\",\"criuPath\":\"$(json_escape "$criu")\",\"criuVersion\":\"$(json_escape "$criu_version")\""
  [ -z "$failed" ] || line+=",\"failed\":\"$failed\",\"reason\":\"$(json_escape "$reason")\""
  [ -z "$detail" ] || line+=",\"detail\":\"$(json_escape "$detail")\""
  line+=",\"durationMs\":$(($(now_ms) - started_ms)),\"probedAt\":\"$probed_at\",\"probedBy\":\"$(json_escape "${FABRIC_CRIU_PROBE_CALLER:-criu-probe.sh}")\"}"
  printf '%s\n' "$line" >"$verdict_file.tmp.$$" && mv -f "$verdict_file.tmp.$$" "$verdict_file"
  echo "$line"
}
fail_step() {
  say "FAILED: $2"
  record false "$1" "$2"
  exit 1
}

# ---- The test process: in its own PID namespace where the machine allows (as a process-runtime
# job), else in its own session (as a container's process is for runc).

# Descriptors inherited from whoever called us (an install script's lock, a test worker's pipes,
# our own lock) would go into the test process, and CRIU would dump them.
close_inherited_fds() {
  local fd_path fd
  for fd_path in /proc/"$BASHPID"/fd/*; do
    fd="${fd_path##*/}"
    [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}
# The launcher is our child (unshare, or a subshell); the test process is its child, found by its
# command line (tree_pid). Fails if it did not start.
start_test_process() {
  if [ "$1" = namespace ]; then
    (close_inherited_fds; exec setsid unshare --pid --fork --kill-child setsid sleep "$sleep_s") </dev/null >/dev/null 2>&1 &
  else
    (close_inherited_fds; setsid sleep "$sleep_s"; exit 0) </dev/null >/dev/null 2>&1 &
  fi
  launcher_pid=$!
  local child
  for _ in $(seq 100); do
    child="$(tr -d ' ' <"/proc/$launcher_pid/task/$launcher_pid/children" 2>/dev/null)"
    if [ -n "$child" ] && [ "$(tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null)" = "sleep $sleep_s " ]; then
      tree_pid="$child"
      return 0
    fi
    kill -0 "$launcher_pid" 2>/dev/null || break
    sleep 0.02
  done
  kill_ours "$launcher_pid"
  { wait "$launcher_pid"; } 2>/dev/null
  launcher_pid=''
  return 1
}
namespace='its own PID namespace'
if ! start_test_process namespace; then
  namespace='its own session (no PID namespace here)'
  start_test_process session || { say "the test process did not start"; exit 2; }
fi
say "dumping a test process (pid $tree_pid, in $namespace) with $criu (CRIU $criu_version), at most ${step_timeout_s}s per step"

# ---- Dump, as ProcessRuntime.checkpoint does.
dump_status=0
timeout -k 3 "$step_timeout_s" "$criu" dump --tree "$tree_pid" --images-dir "$work/images" --log-file "$work/dump.log" -v4 \
  --manage-cgroups=ignore --tcp-close --file-locks </dev/null >"$work/dump.out" 2>&1 8>&- || dump_status=$?
if [ "$dump_status" = 124 ] || [ "$dump_status" = 137 ]; then
  last_line="$(tail -n 1 "$work/dump.log" 2>/dev/null | sed 's/^([0-9.]*) *//' | cut -c1-160)"
  [ -z "$last_line" ] || detail="last line of its log: $last_line"
  fail_step dump "criu dump of a test process hung (killed after ${step_timeout_s}s): checkpoints would hang on this boot"
fi
[ "$dump_status" = 0 ] || fail_step dump "criu dump of a test process failed (exit $dump_status): $(log_errors "$work/dump.log" "$work/dump.out")"
# The dump ended the tree; its launcher exits with it.
for _ in $(seq 100); do is_ours "$tree_pid" && [ "$(cut -d' ' -f3 "/proc/$tree_pid/stat" 2>/dev/null)" != Z ] || break; sleep 0.02; done
{ wait "$launcher_pid"; } 2>/dev/null
launcher_pid=''
tree_pid=''

# ---- Restore, as ProcessRuntime.restore does (not detached: criu restore stays the tree's parent).
timeout -k 3 "$step_timeout_s" "$criu" restore --images-dir "$work/images" --work-dir "$work/restore" --pidfile "$work/restore/restored.pid" \
  --log-file "$work/restore/restore.log" -v4 --manage-cgroups=ignore --tcp-close --file-locks </dev/null >"$work/restore.out" 2>&1 8>&- &
restore_pid=$!
while :; do
  restored_pid="$(cat "$work/restore/restored.pid" 2>/dev/null | tr -d ' \n')"
  [ -z "$restored_pid" ] || break
  if ! kill -0 "$restore_pid" 2>/dev/null || [ "$(cut -d' ' -f3 "/proc/$restore_pid/stat" 2>/dev/null)" = Z ]; then
    restore_status=0
    { wait "$restore_pid"; } 2>/dev/null || restore_status=$?
    restore_pid=''
    if [ "$restore_status" = 124 ] || [ "$restore_status" = 137 ]; then
      last_line="$(tail -n 1 "$work/restore/restore.log" 2>/dev/null | sed 's/^([0-9.]*) *//' | cut -c1-160)"
      [ -z "$last_line" ] || detail="last line of its log: $last_line"
      fail_step restore "criu restore of a test process hung (killed after ${step_timeout_s}s): restores would hang on this boot"
    fi
    fail_step restore "criu restore of a test process failed (exit $restore_status): $(log_errors "$work/restore/restore.log" "$work/restore.out")"
  fi
  sleep 0.02
done
if ! is_ours "$restored_pid"; then
  fail_step restore "criu restore of a test process wrote pid $restored_pid, which is not the restored test process"
fi
kill_ours "$restored_pid"
{ wait "$restore_pid"; } 2>/dev/null
restore_pid=''
restored_pid=''

say "dump and restore of a test process work ($(($(now_ms) - started_ms)) ms)"
record true '' ''
exit 0
