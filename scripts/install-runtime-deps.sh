#!/usr/bin/env bash
# Installs what the Docker runtime and CRIU checkpoints need on a Debian machine, and starts the
# engine: Debian's docker.io (dockerd with experimental features on, which `docker checkpoint`
# needs), a CRIU 4.x that works on this kernel (Debian 12's 3.17 does not: see
# shared/ENVIRONMENT.md), and busybox-static (the tests build their images from it). Idempotent,
# and quick when everything is there. Called by scripts/test.sh before the tests.
#
# CRIU comes from Debian 13 (trixie) through a private apt configuration (the system's sources and
# packages are left alone): criu and its libraries, libc included, are unpacked into one prefix and
# run through that prefix's own loader by a wrapper on the PATH as `criu` (where runc finds it too).
#
# `criu check` passing is not enough: on some boots of our kernel it passes while every dump hangs.
# So CRIU is then probed with a real dump and restore of a tiny process (runtime/criu-probe.sh, each
# step bounded), once per boot: the verdict goes where probeCriu (the runtimes, the tests, `fabric
# doctor`) reads it, and a failed probe makes CRIU count as unavailable everywhere.
#
# Exit status: 0 ready; 3 this platform cannot have them (not Linux, not root, no apt), said
# loudly; 4 Docker is ready and CRIU installed, but CRIU's dump/restore probe failed on this boot
# (said loudly: checkpoint tests are skipped); anything else: an install or start failed (the
# message says which). FABRIC_CRIU_REPROBE=1 probes again even if this boot has a verdict.
set -euo pipefail

criu_prefix="${FABRIC_CRIU_PREFIX:-/opt/fabric/criu}"
criu_wrapper="${FABRIC_CRIU_WRAPPER:-/usr/local/sbin/criu}"
apt_private="${FABRIC_APT_PRIVATE:-/var/cache/fabric-apt}"
docker_socket="${FABRIC_DOCKER_SOCKET:-/var/run/docker.sock}"
dockerd_log=/var/log/fabric-dockerd.log
# dockerd started by this script writes its PID here (a dockerd started by anyone else is never restarted).
dockerd_pidfile=/var/run/fabric-dockerd.pid
dockerd_start_timeout_s=60
criu_min_major=4
criu_probe="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/runtime/criu-probe.sh"
# Set by ensure_criu: the CRIU the runtimes will find (on PATH, or our wrapper).
criu_path=''

say() { echo "install-runtime-deps: $*"; }
cannot() {
  echo "install-runtime-deps: ************************************************************" >&2
  echo "install-runtime-deps: CANNOT INSTALL on this platform: $*" >&2
  echo "install-runtime-deps: tests that need Docker or CRIU will be SKIPPED" >&2
  echo "install-runtime-deps: ************************************************************" >&2
  exit 3
}
fail() {
  echo "install-runtime-deps: FAILED: $*" >&2
  exit 1
}

[ "$(uname -s)" = Linux ] || cannot "$(uname -s) is not Linux"
[ "$(id -u)" = 0 ] || cannot "not root (uid $(id -u))"
command -v apt-get >/dev/null || cannot "no apt-get (not Debian-like)"
[ "$(dpkg --print-architecture)" = amd64 ] || cannot "architecture $(dpkg --print-architecture): the CRIU prefix is built for amd64"

# One install at a time on this machine (several worktrees may run their tests together).
mkdir -p /var/lock
exec 9>/var/lock/fabric-runtime-deps.lock
flock -w 600 9 || fail "another install-runtime-deps held the lock for 10 minutes"

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get -o DPkg::Lock::Timeout=300 update -qq || fail "apt-get update"
    apt_updated=1
  fi
  # No service may start during the install: we start dockerd ourselves, with our options.
  local added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  local status=0
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  [ "$added_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$status" = 0 ] || fail "apt-get install $*"
}

# ---- CRIU

criu_major() { "$1" --version 2>/dev/null | sed -n 's/^Version: *\([0-9]*\)\..*/\1/p' | head -n1; }

criu_works() {
  local criu="$1" major
  [ -x "$criu" ] || return 1
  major="$(criu_major "$criu")"
  [ -n "$major" ] && [ "$major" -ge "$criu_min_major" ] || return 1
  "$criu" check >/dev/null 2>&1
}

# The Debian mirror this machine already uses (its trixie suite holds CRIU 4.x).
debian_mirror() {
  local uri
  uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

install_criu() {
  local mirror staging downloads opts packages package
  mirror="$(debian_mirror)"
  say "installing CRIU 4.x from Debian trixie ($mirror) into $criu_prefix"
  mkdir -p "$apt_private/lists/partial" "$apt_private/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$apt_private/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_private/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt_private/lists" -o "Dir::Cache=$apt_private/cache" -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq || fail "apt-get update of the private trixie sources ($mirror)"
  # criu and everything it needs, from an empty system (so libc6 and the loader come along).
  packages="$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances criu | grep -v '^ ' | grep -v '^<' | sort -u)"
  [ -n "$packages" ] || fail "could not resolve criu's dependencies in trixie"
  downloads="$(mktemp -d)"
  staging="${criu_prefix}.staging"
  rm -rf "$staging"
  mkdir -p "$staging"
  # shellcheck disable=SC2086
  (cd "$downloads" && apt-get "${opts[@]}" download -qq $packages) || fail "apt-get download $packages"
  for package in "$downloads"/*.deb; do dpkg -x "$package" "$staging"; done
  local version
  version="$(dpkg-deb -f "$downloads"/criu_*.deb Version)"
  rm -rf "$downloads"
  local loader="$staging/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  [ -e "$loader" ] || loader="$staging/lib64/ld-linux-x86-64.so.2"
  [ -e "$loader" ] || fail "the unpacked libc6 has no loader"
  rm -rf "$criu_prefix"
  mkdir -p "$(dirname "$criu_prefix")"
  mv "$staging" "$criu_prefix"
  mkdir -p "$(dirname "$criu_wrapper")"
  cat >"$criu_wrapper" <<EOF
#!/bin/sh
# CRIU $version from Debian trixie, run with its own libc (installed by fabric's scripts/install-runtime-deps.sh).
p='$criu_prefix'
exec "\$p/${loader#"$staging/"}" --library-path "\$p/usr/lib/x86_64-linux-gnu:\$p/lib/x86_64-linux-gnu" "\$p/usr/sbin/criu" "\$@"
EOF
  chmod 755 "$criu_wrapper"
}

ensure_criu() {
  local found
  found="$(command -v criu || true)"
  if [ -n "$found" ] && criu_works "$found"; then
    say "criu ok: $("$found" --version | head -n1) at $found"
    criu_path="$found"
    return
  fi
  if criu_works "$criu_wrapper"; then
    say "criu ok: $("$criu_wrapper" --version | head -n1) at $criu_wrapper"
    criu_path="$criu_wrapper"
    return
  fi
  [ -z "$found" ] || say "criu at $found is not usable (needs >= $criu_min_major.0 and a passing 'criu check')"
  install_criu
  if ! criu_works "$criu_wrapper"; then
    "$criu_wrapper" check >&2 || true
    fail "CRIU installed at $criu_wrapper but 'criu check' does not pass on this kernel (output above)"
  fi
  say "criu ok: $("$criu_wrapper" --version | head -n1) at $criu_wrapper"
  criu_path="$criu_wrapper"
}

# A real dump and restore of a tiny process (bounded; the verdict is kept for this boot). Sets
# criu_probe_failed to the reason when CRIU cannot checkpoint here.
criu_probe_failed=''
probe_criu() {
  local args=() verdict status=0
  [ "${FABRIC_CRIU_REPROBE:-0}" != 1 ] || args+=(--force)
  verdict="$(FABRIC_CRIU_PROBE_CALLER=install-runtime-deps.sh bash "$criu_probe" "${args[@]}" "$criu_path" 9>&-)" || status=$?
  case "$status" in
    0) say "criu dump/restore probe ok on this boot" ;;
    1) criu_probe_failed="$(sed -n 's/.*"reason":"\(\([^"\\]\|\\.\)*\)".*/\1/p' <<<"$verdict")"
       criu_probe_failed="${criu_probe_failed:-the dump/restore probe failed}" ;;
    *) fail "could not probe CRIU with a dump and restore ($criu_probe exited $status, see above)" ;;
  esac
}

# ---- Docker

docker_answers() { curl -fsS --max-time 5 --unix-socket "$docker_socket" http://localhost/_ping >/dev/null 2>&1; }
docker_experimental() { curl -fsS --max-time 5 --unix-socket "$docker_socket" http://localhost/info 2>/dev/null | grep -q '"ExperimentalBuild":true'; }

ensure_daemon_json() {
  local file=/etc/docker/daemon.json
  mkdir -p /etc/docker
  if [ ! -s "$file" ]; then
    echo '{ "experimental": true }' >"$file"
    return
  fi
  grep -qE '"experimental" *: *true' "$file" && return
  command -v node >/dev/null || fail "$file exists without \"experimental\": true and no node to edit it; add it by hand"
  node -e 'const fs = require("fs"); const f = process.argv[1]; const c = JSON.parse(fs.readFileSync(f, "utf8")); c.experimental = true; fs.writeFileSync(f, JSON.stringify(c, null, 2) + "\n")' "$file"
  say "turned on experimental features in $file (docker checkpoint needs them)"
}

start_dockerd() {
  say "starting dockerd (log: $dockerd_log)"
  # Its own session, so it outlives the shell that started it; criu's wrapper must be on its PATH (runc looks it up).
  PATH="$(dirname "$criu_wrapper"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    setsid dockerd --host "unix://$docker_socket" >>"$dockerd_log" 2>&1 </dev/null 9>&- &
  echo $! >"$dockerd_pidfile"
  local waited=0
  until docker_answers; do
    if ! kill -0 "$(cat "$dockerd_pidfile")" 2>/dev/null; then
      tail -n 20 "$dockerd_log" >&2
      fail "dockerd exited at start (last lines of $dockerd_log above)"
    fi
    [ "$waited" -lt "$((dockerd_start_timeout_s * 10))" ] || fail "dockerd did not answer on $docker_socket within ${dockerd_start_timeout_s}s"
    sleep 0.1
    waited=$((waited + 1))
  done
}

ensure_docker() {
  command -v dockerd >/dev/null || { say "installing docker.io"; apt_install docker.io; }
  ensure_daemon_json
  if docker_answers; then
    if docker_experimental; then
      say "docker ok: engine answers on $docker_socket, experimental on"
      return
    fi
    local ours
    ours="$(cat "$dockerd_pidfile" 2>/dev/null || true)"
    if [ -n "$ours" ] && kill -0 "$ours" 2>/dev/null; then
      say "restarting the dockerd we started (pid $ours) to turn on experimental features"
      kill "$ours"
      local waited=0
      while kill -0 "$ours" 2>/dev/null && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
    else
      fail "a dockerd we did not start answers on $docker_socket without experimental features; checkpoints need them: add \"experimental\": true to /etc/docker/daemon.json and restart it"
    fi
  fi
  start_dockerd
  docker_experimental || fail "dockerd started but reports experimental off"
  say "docker ok: engine started on $docker_socket, experimental on"
}

command -v busybox >/dev/null || { say "installing busybox-static (test images are built from it)"; apt_install busybox-static; }
ensure_criu
probe_criu
ensure_docker
if [ -n "$criu_probe_failed" ]; then
  echo "install-runtime-deps: ************************************************************" >&2
  echo "install-runtime-deps: CRIU CANNOT CHECKPOINT on this boot: $criu_probe_failed" >&2
  echo "install-runtime-deps: probeCriu and \`fabric doctor\` report CRIU unavailable; checkpoint tests will be SKIPPED" >&2
  echo "install-runtime-deps: (verdict kept for this boot in ${FABRIC_CRIU_PROBE_FILE:-/run/fabric/criu-probe.json}; FABRIC_CRIU_REPROBE=1 probes again)" >&2
  echo "install-runtime-deps: ************************************************************" >&2
  exit 4
fi
