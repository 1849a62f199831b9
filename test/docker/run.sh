#!/usr/bin/env bash
# The Docker end-to-end test: the project's own image (Dockerfile), built on a Debian base made
# here with debootstrap (no registry needed), run as a server and a client container by the
# repository's docker-compose.yml on an internal container network (198.18.100.0/24), each
# creating tun0 and carrying traffic through the tunnel. It asserts what the namespace test
# (test/integration/vpn.test.ts) asserts: tun0 up, address and route pushed, ping both ways,
# 50 MB over TCP intact, only encrypted UDP on the wire, `tvpn show --json`; and, for the
# containers, a recreated server container keeping its leases in the state volume and a clean
# exit 0 on `docker stop`.
#
#   bash test/docker/run.sh           as root; prints "ok <id> - ..." per check, exit 0 if all pass
#   bash test/docker/run.sh --check   exit 0 if it can run here, else exit 3 with the reason
#
# Run by test/integration/docker.test.ts (npm test). It never touches a system Docker: it
# starts its own dockerd (own data root, exec root, pidfile, socket and config under a temp
# dir; no iptables, no ip_forward, no default bridge) and points every docker and
# docker-compose command at it with DOCKER_HOST. On every exit path (trap) it removes the
# containers, network, volume and images, stops that dockerd by PID, unmounts and deletes its
# temp dir, and checks that the host's firewall and ip_forward are as they were.
#
# Installs docker.io, debootstrap, docker-compose and tcpdump with apt-get if missing.
# The debootstrap tree is cached as a tarball in /var/cache/tvpn-test (root-only, checksummed,
# rebuilt after 7 days or when the package list changes); TVPN_DOCKER_CACHE=0 disables it.
#
# Environment: TVPN_DOCKER_TEST=0 skips (--check says so), TVPN_DOCKER_CACHE=0,
# TVPN_DOCKER_DEADLINE (seconds, default 420), TVPN_DEBIAN_MIRROR (default deb.debian.org).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUITE=bookworm
MIRROR=${TVPN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the Dockerfile's build stage (python3, make, g++) and runtime stage (ip, ping) need, so
# that neither runs apt.
INCLUDE=iproute2,iputils-ping,python3,make,g++
CACHE_DIR=/var/cache/tvpn-test
CACHE_MAX_DAYS=7
DEADLINE=${TVPN_DOCKER_DEADLINE:-420}
SUBNET=198.18.100.0/24
SERVER_IP=198.18.100.2
CLIENT_IP=198.18.100.3
TRANSFER=$((50 * 1024 * 1024))
MARKER=TVPN-CLEARTEXT-MARKER-d0c4

# ---------------------------------------------------------------------------------------------
# --check: can this machine run the test? Fast, installs nothing.
unavailable() {
  if [ "${TVPN_DOCKER_TEST:-1}" = 0 ]; then echo "disabled by TVPN_DOCKER_TEST=0"; return; fi
  if [ "$(uname -s)" != Linux ]; then echo "needs Linux"; return; fi
  if [ "$(id -u)" != 0 ]; then echo "needs root: it starts its own dockerd and creates tun devices; run as root (CI does)"; return; fi
  if [ ! -c /dev/net/tun ]; then echo "needs /dev/net/tun"; return; fi
  if ! command -v node >/dev/null 2>&1; then echo "needs node on PATH (it goes into the test's base image)"; return; fi
  local tool
  for tool in dockerd debootstrap docker-compose tcpdump; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
      echo "needs $tool (Debian: docker.io, debootstrap, docker-compose, tcpdump), or apt-get to install it"
      return
    fi
  done
}
if [ "${1:-}" = --check ]; then
  reason=$(unavailable)
  if [ -n "$reason" ]; then echo "$reason"; exit 3; fi
  echo "can run"
  exit 0
fi
reason=$(unavailable)
if [ -n "$reason" ]; then echo "docker-test: cannot run: $reason" >&2; exit 3; fi

# ---------------------------------------------------------------------------------------------
# Output, time limits, state for cleanup. fds 3 and 4 keep the script's stdout and stderr for
# the traps, which may fire inside a step whose output goes to a log file.
exec 3>&1 4>&2
T0=$SECONDS
declare -A TIMING=()
TIMING_ORDER=()
step_start=$SECONDS
log() { printf 'docker-test: [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
timed() { TIMING[$1]=$((SECONDS - step_start)); TIMING_ORDER+=("$1"); step_start=$SECONDS; }
ok() { printf 'ok %s - %s\n' "$1" "$2"; }
FAILED=
fail() {
  printf 'not ok %s - %s\n' "$1" "$2"
  FAILED=$1
  exit 1
}

ID="$$-$RANDOM"
PROJECT="tvpndocker${$}"
IMG="tvpn-test-image:$ID"
BASE_IMG="tvpn-test-base:$ID"
WORK=
DOCKERD_PID=
CHILD=
BG_PIDS=()
WATCHDOG=
POLICY_RC_CREATED=
RUN_DOCKER_EXISTED=
RUN_CONTAINERD_EXISTED=
NETWORK_ID=
FW_BEFORE=
FWD_BEFORE=

# One step, bounded: in the background and waited for, so that a TERM (the watchdog, the test
# runner, ^C) interrupts the wait at once and the trap can clean up.
bounded() {
  local secs=$1
  shift
  timeout -k 5 "$secs" "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=
  return "$rc"
}

# Polls a command until it succeeds, up to $1 seconds.
until_ok() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.3
  done
}

firewall_state() {
  if command -v iptables-save >/dev/null 2>&1; then iptables-save 2>/dev/null | grep -v '^#' || true; fi
  if command -v ip6tables-save >/dev/null 2>&1; then ip6tables-save 2>/dev/null | grep -v '^#' || true; fi
  if command -v nft >/dev/null 2>&1; then nft list ruleset 2>/dev/null || true; fi
}

DOCKER=
d() { timeout -k 5 "${DTIMEOUT:-60}" "$DOCKER" "$@"; }
compose() {
  timeout -k 5 "${DTIMEOUT:-120}" docker-compose --env-file "$WORK/compose.env" -f "$REPO/docker-compose.yml" -p "$PROJECT" "$@"
}

cleanup() {
  local rc=$? t=$SECONDS problems=()
  set +e
  exec 1>&3 2>&4
  trap - EXIT INT TERM
  [ -n "$WATCHDOG" ] && { kill $(ps -o pid= --ppid "$WATCHDOG" 2>/dev/null) "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; }
  [ -n "$CHILD" ] && { kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; }
  local p
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$FAILED" ] && [ -n "${SRV:-}" ]; then
    # What the containers said, for the failure report.
    local c
    for c in server client; do
      echo "---- $c container log (tail) ----"
      DTIMEOUT=20 compose logs --no-color --tail=40 "$c" 2>&1 | sed 's/^/  /'
    done
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    DTIMEOUT=60 compose down -v --remove-orphans -t 5 >/dev/null 2>&1
    DTIMEOUT=30 d rm -f "${PROJECT}_server_1" "${PROJECT}_client_1" >/dev/null 2>&1
    DTIMEOUT=30 d network rm "${PROJECT}_underlay" >/dev/null 2>&1
    DTIMEOUT=30 d volume rm "${PROJECT}_server-state" >/dev/null 2>&1
    DTIMEOUT=60 d rmi -f "$IMG" "$BASE_IMG" >/dev/null 2>&1
    local left
    left=$(DTIMEOUT=20 d ps -aq 2>/dev/null; DTIMEOUT=20 d network ls -q --filter type=custom 2>/dev/null; DTIMEOUT=20 d volume ls -q 2>/dev/null)
    [ -n "$left" ] && problems+=("left in the test's dockerd: $(echo $left)")
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    local i
    for i in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      problems+=("dockerd $DOCKERD_PID ignored SIGTERM for 20 s; killed")
      kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    # Its containerd and any shim: processes whose command line names this run's private dir.
    local pids=()
    for p in /proc/[0-9]*; do
      [ "${p#/proc/}" = $$ ] && continue
      local cmd
      cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
      [[ "$cmd" == *"$WORK/"* ]] && pids+=("${p#/proc/}")
    done
    if [ ${#pids[@]} -gt 0 ]; then
      problems+=("processes left by the test's dockerd, killed: ${pids[*]}")
      kill -KILL "${pids[@]}" 2>/dev/null
      sleep 0.5
    fi
    # Overlay, shm and netns mounts under the data and exec roots, deepest first.
    local m
    while read -r m; do umount -l "$m" 2>/dev/null; done < <(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    rm -rf "$WORK"
    [ -e "$WORK" ] && problems+=("could not remove $WORK")
  fi
  if [ -n "$NETWORK_ID" ] && ip link show "br-${NETWORK_ID:0:12}" >/dev/null 2>&1; then
    problems+=("bridge br-${NETWORK_ID:0:12} was left; deleted")
    ip link del "br-${NETWORK_ID:0:12}" 2>/dev/null
  fi
  # Fixed paths whatever the exec root: dockerd's plugin manager makes /run/docker/plugins,
  # containerd's shims their sockets' folder /run/containerd/s. Removed if this run made them
  # (and they are empty).
  if [ -z "$RUN_DOCKER_EXISTED" ] && [ -d /run/docker ]; then
    rmdir /run/docker/plugins /run/docker 2>/dev/null || problems+=("/run/docker is not empty")
  fi
  if [ -z "$RUN_CONTAINERD_EXISTED" ] && [ -d /run/containerd ]; then
    rmdir /run/containerd/s /run/containerd 2>/dev/null || problems+=("/run/containerd is not empty")
  fi
  [ -n "$POLICY_RC_CREATED" ] && rm -f /usr/sbin/policy-rc.d
  if [ -n "$FWD_BEFORE" ]; then
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$FWD_BEFORE" ] || problems+=("net.ipv4.ip_forward changed")
    [ "$(firewall_state | sha256sum)" = "$FW_BEFORE" ] || problems+=("the host's firewall rules changed")
  fi
  TIMING[teardown]=$((SECONDS - t))
  TIMING_ORDER+=(teardown)
  if [ ${#problems[@]} -eq 0 ]; then
    ok teardown "containers, network, volume, images, the test's dockerd and its data root removed; host firewall and ip_forward unchanged"
  else
    printf 'not ok teardown - %s\n' "$(IFS=';'; echo "${problems[*]}")"
    [ "$rc" = 0 ] && rc=1
  fi
  local summary=() k
  for k in "${TIMING_ORDER[@]}"; do summary+=("$k ${TIMING[$k]}s"); done
  log "timing: $(IFS=','; echo "${summary[*]}" | sed 's/,/, /g'); total $((SECONDS - T0))s"
  if [ "$rc" = 0 ]; then log "PASS"; else log "FAIL${FAILED:+ at $FAILED} (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
on_signal() {
  log "got SIG$1; cleaning up" >&3
  FAILED=${FAILED:-signal}
  exit 1
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

# A backstop for the whole run: each step has its own limit too.
(sleep "$DEADLINE" && echo "docker-test: deadline of ${DEADLINE}s reached" && kill -TERM $$) &
WATCHDOG=$!

# One run at a time per machine: the compose network's subnet and the cache are shared.
exec 9>/run/lock/tvpn-docker-test.lock 2>/dev/null || exec 9>/tmp/tvpn-docker-test.lock
if ! flock -w 300 9; then fail setup "another Docker test run held the lock for 300 s"; fi

# ---------------------------------------------------------------------------------------------
# 1. Packages.
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # Keep the package's own service from starting (on a host with an init system): that
  # dockerd would run with its defaults, which change the host firewall.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  bounded 180 apt-get update -qq || fail setup "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive bounded 240 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=60 "${need[@]}" >/dev/null ||
    fail setup "apt-get install ${need[*]} failed"
  if [ -n "$POLICY_RC_CREATED" ]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=; fi
fi
# The client that came with dockerd (docker.io puts it in /usr/bin, dockerd in /usr/sbin), not
# whichever docker is first on PATH: its version matches the engine's.
DOCKER=
for c in "$(dirname "$(command -v dockerd)")/docker" /usr/bin/docker "$(command -v docker || true)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then DOCKER=$c; break; fi
done
[ -n "$DOCKER" ] || fail setup "no docker client found"
timed packages

# ---------------------------------------------------------------------------------------------
# 2. Our own dockerd.
FW_BEFORE=$(firewall_state | sha256sum)
FWD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
[ -e /run/docker ] && RUN_DOCKER_EXISTED=1
[ -e /run/containerd ] && RUN_CONTAINERD_EXISTED=1
if ip -4 route show to match "$SERVER_IP" 2>/dev/null | grep -qv '^default'; then
  fail setup "the host already routes $SUBNET ($(ip -4 route show to match "$SERVER_IP" | grep -v '^default' | head -1)); the compose network needs it"
fi
WORK=$(mktemp -d /tmp/tvpn-docker.XXXXXX)
chmod 700 "$WORK"
mkdir -p "$WORK/data" "$WORK/exec" "$WORK/client" "$WORK/etc"
: >"$WORK/compose.env"
# The trust key would go to /etc/docker/key.json otherwise; an empty config keeps
# /etc/docker/daemon.json (a system Docker's) out.
printf '{"deprecated-key-path": "%s/key.json"}\n' "$WORK" >"$WORK/daemon.json"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_TLS
export DOCKER_HOST="unix://$WORK/docker.sock"
export DOCKER_CONFIG="$WORK/client"
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
dockerd --config-file "$WORK/daemon.json" \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  -H "$DOCKER_HOST" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --default-address-pool base=198.18.64.0/18,size=24 \
  </dev/null >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
log "dockerd $DOCKERD_PID on $DOCKER_HOST (data root $WORK/data)"
dockerd_up() { kill -0 "$DOCKERD_PID" 2>/dev/null || return 2; DTIMEOUT=5 d version --format '{{.Server.Version}}'; }
if ! until_ok 60 dockerd dockerd_up; then
  tail -n 20 "$WORK/dockerd.log" >&2
  fail setup "dockerd did not come up"
fi
log "dockerd $(DTIMEOUT=10 d version --format '{{.Server.Version}}'), storage $(DTIMEOUT=10 d info --format '{{.Driver}}'); client $DOCKER $(DTIMEOUT=10 d version --format '{{.Client.Version}}')"
timed dockerd

# ---------------------------------------------------------------------------------------------
# 3. The base image: Debian minbase from debootstrap plus this host's Node, npm and Node's
# headers, so the Dockerfile's `npm ci` and node-gyp work as they do on the host.
ROOTFS="$WORK/rootfs"
KEY=$(printf '%s\n' v1 "$SUITE" "$MIRROR" "$INCLUDE" "$(dpkg --print-architecture 2>/dev/null || uname -m)" | sha256sum | cut -c1-16)
CACHE_TAR="$CACHE_DIR/debootstrap-$SUITE-$KEY.tar"
cache_safe() {
  [ "${TVPN_DOCKER_CACHE:-1}" != 0 ] || return 1
  [ -L "$CACHE_DIR" ] && return 1
  mkdir -p -m 700 "$CACHE_DIR" 2>/dev/null || return 1
  # Root's alone: owned by root, writable by nobody else.
  [ "$(stat -c %u "$CACHE_DIR")" = 0 ] && [ $((8#$(stat -c %a "$CACHE_DIR") & 8#022)) = 0 ]
}
cache_hit() {
  local f
  for f in "$CACHE_TAR" "$CACHE_TAR.sha256"; do
    [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %u "$f")" = 0 ] && [ $((8#$(stat -c %a "$f") & 8#022)) = 0 ] || return 1
  done
  [ -n "$(find "$CACHE_TAR" -mtime -"$CACHE_MAX_DAYS")" ] || return 1
  [ "$(sha256sum <"$CACHE_TAR" | cut -d' ' -f1)" = "$(cat "$CACHE_TAR.sha256")" ]
}
mkdir "$ROOTFS"
if cache_safe && cache_hit; then
  log "debootstrap tree from the cache ($CACHE_TAR)"
  bounded 120 tar -C "$ROOTFS" -xf "$CACHE_TAR" || fail base "unpacking $CACHE_TAR failed"
  BASE_FROM=cache
else
  log "debootstrap --variant=minbase --include=$INCLUDE $SUITE ($MIRROR)"
  if ! bounded 240 debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    fail base "debootstrap failed"
  fi
  # What an image needs no copy of: downloaded packages, package lists, docs, locales.
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/info/*
  BASE_FROM=debootstrap
  if cache_safe; then
    tmp="$CACHE_TAR.tmp.$$"
    if bounded 120 tar -C "$ROOTFS" -cf "$tmp" . && sha256sum <"$tmp" | cut -d' ' -f1 >"$tmp.sha256"; then
      find "$CACHE_DIR" -maxdepth 1 -name 'debootstrap-*' ! -name "debootstrap-$SUITE-$KEY.tar*" -delete
      mv -f "$tmp.sha256" "$CACHE_TAR.sha256" && mv -f "$tmp" "$CACHE_TAR"
      log "cached the debootstrap tree as $CACHE_TAR"
    fi
    rm -f "$tmp" "$tmp.sha256"
  fi
fi
NODE_BIN=$(readlink -f "$(command -v node)")
PREFIX=$(dirname "$(dirname "$NODE_BIN")")
for f in "$PREFIX/include/node/node_api.h" "$PREFIX/lib/node_modules/npm/bin/npm-cli.js"; do
  [ -f "$f" ] || fail base "$f not found: the host's Node needs its headers and npm beside it"
done
install -D -m 755 "$NODE_BIN" "$ROOTFS$PREFIX/bin/node"
mkdir -p "$ROOTFS$PREFIX/lib/node_modules" "$ROOTFS$PREFIX/include"
cp -a "$PREFIX/lib/node_modules/npm" "$ROOTFS$PREFIX/lib/node_modules/"
cp -a "$PREFIX/include/node" "$ROOTFS$PREFIX/include/"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS$PREFIX/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS$PREFIX/bin/npx"
# npm's global config and the CA bundle it names, so the base's npm reaches the registry as the
# host's does (the base has no ca-certificates package of its own).
[ -f "$PREFIX/etc/npmrc" ] && install -D -m 644 "$PREFIX/etc/npmrc" "$ROOTFS$PREFIX/etc/npmrc"
[ -f /etc/ssl/certs/ca-certificates.crt ] && install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
node_in_base=$(chroot "$ROOTFS" "$PREFIX/bin/node" --version 2>&1) || fail base "the host's node does not run in the base: $node_in_base"
bounded 120 bash -c 'tar -C "$1" -c . | "$2" import -m "tvpn test base: debootstrap $3 + host node" - "$4" >/dev/null' _ \
  "$ROOTFS" "$DOCKER" "$SUITE" "$BASE_IMG" || fail base "docker import failed"
rm -rf "$ROOTFS"
log "base $BASE_IMG: Debian $SUITE minbase ($BASE_FROM) + node $node_in_base, npm, headers"
timed "base ($BASE_FROM)"

# ---------------------------------------------------------------------------------------------
# 4. The image, from the repository's Dockerfile. The build's RUN steps use the host's network
# (the daemon has no default bridge): npm ci fetches from the npm registry.
log "docker build (Dockerfile, BASE=$BASE_IMG)"
if ! DTIMEOUT=300 bounded 300 "$DOCKER" build --network host --force-rm --build-arg "BASE=$BASE_IMG" -t "$IMG" "$REPO" >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log" >&2
  fail image "docker build failed"
fi
grep -q 'Reading package lists' "$WORK/build.log" && fail image "the build ran apt although the base has python3, make, g++, ip and ping"
version=$(DTIMEOUT=30 d run --rm --network none "$IMG" --version) || fail image "tvpn --version in the image failed"
want=$(node -p 'require(process.argv[1]).version' "$REPO/package.json")
[ "$version" = "$want" ] || fail image "the image's tvpn --version says '$version', package.json $want"
size=$(DTIMEOUT=30 d image inspect -f '{{.Size}}' "$IMG")
ok image "built from the Dockerfile on the debootstrap base without apt ($((size / 1024 / 1024)) MB); tvpn --version $version"
timed image

# ---------------------------------------------------------------------------------------------
# 5. Configs as the README makes them: configs/docker/ with keys from the image.
cp "$REPO/configs/docker/server.yaml" "$REPO/configs/docker/client.yaml" "$WORK/etc/"
(
  umask 077
  DTIMEOUT=30 d run --rm --network none "$IMG" genkey >"$WORK/etc/server.key"
  DTIMEOUT=30 d run --rm --network none "$IMG" genkey >"$WORK/etc/client.key"
) || fail configs "tvpn genkey in the image failed"
server_pub=$(DTIMEOUT=30 d run --rm -i --network none "$IMG" pubkey <"$WORK/etc/server.key") || fail configs "tvpn pubkey failed"
client_pub=$(DTIMEOUT=30 d run --rm -i --network none "$IMG" pubkey <"$WORK/etc/client.key") || fail configs "tvpn pubkey failed"
sed -i "s|<client public key>|$client_pub|" "$WORK/etc/server.yaml"
sed -i "s|<server public key>|$server_pub|" "$WORK/etc/client.yaml"
for f in server client; do
  out=$(DTIMEOUT=30 d run --rm --network none -v "$WORK/etc:/etc/tvpn:ro" "$IMG" check -c "/etc/tvpn/$f.yaml" 2>&1) ||
    fail configs "tvpn check -c $f.yaml: $out"
done
ok configs "configs/docker/{server,client}.yaml with keys from 'tvpn genkey' pass 'tvpn check' in the image"

# 5b. The README's "fill the folder with the image's own tvpn init and add-client", literally
#     (the endpoint aside), then what they wrote passes tvpn check on the read-only mount.
mkdir -p "$WORK/readme-etc"
DTIMEOUT=30 d run --rm --network none -v "$WORK/readme-etc:/etc/tvpn" -w /etc/tvpn "$IMG" init --endpoint vpn.example.com:51820 >/dev/null 2>&1 ||
  fail init "docker run ... tvpn init failed"
DTIMEOUT=30 d run --rm --network none -v "$WORK/readme-etc:/etc/tvpn" -w /etc/tvpn "$IMG" add-client laptop -c server.yaml >/dev/null 2>&1 ||
  fail init "docker run ... tvpn add-client laptop -c server.yaml failed"
for f in server laptop; do
  out=$(DTIMEOUT=30 d run --rm --network none -v "$WORK/readme-etc:/etc/tvpn:ro" "$IMG" check -c "/etc/tvpn/$f.yaml" 2>&1) ||
    fail init "tvpn check -c $f.yaml after init and add-client: $out"
done
[ "$(stat -c %a "$WORK/readme-etc/server.key")" = 600 ] || fail init "server.key written by init is not mode 0600"
ok init "the README's docker run ... tvpn init and add-client fill a config folder that passes tvpn check"

# ---------------------------------------------------------------------------------------------
# 6. The two containers, by the repository's docker-compose.yml.
export TVPN_IMAGE="$IMG" TVPN_CONFIG_DIR="$WORK/etc"
log "docker-compose up (project $PROJECT)"
if ! bounded 120 docker-compose --env-file "$WORK/compose.env" -f "$REPO/docker-compose.yml" -p "$PROJECT" up -d --no-build >"$WORK/compose.log" 2>&1; then
  cat "$WORK/compose.log" >&2
  fail containers "docker-compose up failed"
fi
SRV=$(compose ps -q server) || true
CLI=$(compose ps -q client) || true
[ -n "$SRV" ] && [ -n "$CLI" ] || fail containers "docker-compose ps found no containers"
NETWORK_ID=$(DTIMEOUT=20 d network inspect -f '{{.Id}}' "${PROJECT}_underlay") || fail containers "no network ${PROJECT}_underlay"
internal=$(DTIMEOUT=20 d network inspect -f '{{.Internal}} {{(index .IPAM.Config 0).Subnet}}' "${PROJECT}_underlay") || true
[ "$internal" = "true $SUBNET" ] || fail containers "network ${PROJECT}_underlay: internal/subnet is '$internal', want 'true $SUBNET'"
logs_of() { DTIMEOUT=20 d logs "$1" 2>&1; }
# (Into a variable first: grep -q ending the pipe early would fail it under pipefail.)
logs_have() { local l; l=$(logs_of "$1") && grep -qE "$2" <<<"$l"; }
until_ok 30 "the server to listen" logs_have "$SRV" 'listening on' || fail containers "the server did not start: $(logs_of "$SRV" | tail -5)"
until_ok 30 "the client's config" logs_have "$CLI" 'config 1 applied' || fail containers "the client got no config: $(logs_of "$CLI" | tail -5)"
log "server $SERVER_IP and client $CLIENT_IP up, client configured"
timed containers

# ---------------------------------------------------------------------------------------------
# 7. The checks of the namespace test, through the containers.
x() { local c=$1; shift; DTIMEOUT=${XTIMEOUT:-30} d exec "$c" "$@"; }
addr_of() { x "$1" ip -4 -o addr show dev tun0 | awk '{ print $4 }' | head -n 1; }

a=$(addr_of "$SRV") || true
b=$(addr_of "$CLI") || true
[ "$a" = 10.8.0.1/24 ] || fail tun "server tun0 address is '$a', want 10.8.0.1/24"
[ "$b" = 10.8.0.10/24 ] || fail tun "client tun0 address is '$b', want 10.8.0.10/24 (the pool's first)"
link=$(x "$CLI" ip -o link show tun0) || true
re='[<,]UP[,>]'
[[ "$link" =~ $re ]] || fail tun "client tun0 is not up: $link"
[[ "$link" =~ " mtu 1420 " ]] || fail tun "client tun0 MTU is not the pushed 1420: $link"
logs_have "$SRV" 'address 10\.8\.0\.10 assigned to client' || fail tun "the server log does not say it assigned 10.8.0.10 to client"
ok tun "tun0 up in both containers: server 10.8.0.1/24, client 10.8.0.10/24 from the server's pool, MTU 1420 pushed"

route=$(x "$CLI" ip route show 10.20.0.0/16) || true
re='^10\.20\.0\.0/16 dev tun0( |$)'
[[ "$route" =~ $re ]] || fail route "no pushed route 10.20.0.0/16 dev tun0 in the client (got '$route')"
ok route "the pushed route 10.20.0.0/16 is in the client's table via tun0"

pings() { x "$1" ping -c 3 -i 0.2 -W 1 "$2" >/dev/null 2>&1; }
pings "$CLI" 10.8.0.1 || fail ping "client -> 10.8.0.1 through the tunnel failed"
pings "$SRV" 10.8.0.10 || fail ping "server -> 10.8.0.10 through the tunnel failed"
ok ping "ping through the tunnel both ways (client -> 10.8.0.1, server -> 10.8.0.10)"

# 50 MB client -> server over TCP through the tunnel, with a capture on the host side of the
# underlay bridge.
BRIDGE="br-${NETWORK_ID:0:12}"
FIX="$REPO/test/integration/fixtures"
DTIMEOUT=30 d cp "$FIX/tcp-sink.mjs" "$SRV:/tmp/tcp-sink.mjs" || fail transfer "docker cp tcp-sink.mjs failed"
DTIMEOUT=30 d cp "$FIX/tcp-source.mjs" "$CLI:/tmp/tcp-source.mjs" || fail transfer "docker cp tcp-source.mjs failed"
PCAP="$WORK/wire.pcap"
timeout -k 5 200 tcpdump -i "$BRIDGE" -n -s 0 -B 131072 -U -w "$PCAP" >"$WORK/tcpdump.log" 2>&1 &
TCPDUMP_PID=$!
BG_PIDS+=("$TCPDUMP_PID")
until_ok 15 tcpdump grep -q 'listening on' "$WORK/tcpdump.log" || fail transfer "tcpdump on $BRIDGE did not start: $(cat "$WORK/tcpdump.log")"
timeout -k 5 150 "$DOCKER" exec "$SRV" node /tmp/tcp-sink.mjs 10.8.0.1 5201 >"$WORK/sink.out" 2>"$WORK/sink.err" &
SINK_PID=$!
BG_PIDS+=("$SINK_PID")
until_ok 15 "the TCP sink" grep -q listening "$WORK/sink.err" || fail transfer "the TCP sink did not listen: $(cat "$WORK/sink.err")"
t_transfer=$SECONDS
sent=$(XTIMEOUT=120 x "$CLI" node /tmp/tcp-source.mjs 10.8.0.1 5201 "$TRANSFER" "$MARKER" 0) || fail transfer "tcp-source failed: $sent"
wait "$SINK_PID" || fail transfer "the TCP sink failed: $(cat "$WORK/sink.err")"
t_transfer=$((SECONDS - t_transfer))
received=$(cat "$WORK/sink.out")
[[ "$sent" == *"\"bytes\":$TRANSFER,"* ]] || fail transfer "the source sent '$sent'"
[ "$sent" = "$received" ] || fail transfer "sent $sent but received $received"
ok transfer "50 MB over TCP client -> server through the tunnel intact (same SHA-256 both ends, ${t_transfer}s)"

sleep 0.3
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
dropped=$(grep -oE '[0-9]+ packets? dropped by kernel' "$WORK/tcpdump.log" || echo "tcpdump reported no drop count")
other=$(tcpdump -r "$PCAP" -n 'not (udp port 51820) and not arp and not (ip6 and (icmp6 or dst net ff00::/8))' 2>/dev/null) || fail wire "tcpdump -r failed"
[ -z "$other" ] || fail wire "besides the tunnel's UDP on port 51820 the underlay carried: $(head -n 5 <<<"$other")"
tunnel=$(tcpdump -r "$PCAP" -n -c 5 'udp port 51820' 2>/dev/null) || true
grep -q UDP <<<"$tunnel" || fail wire "no UDP on port 51820 in the capture"
pcap_size=$(stat -c %s "$PCAP")
[ "$pcap_size" -gt "$TRANSFER" ] || fail wire "the capture holds $pcap_size bytes, less than the transfer ($dropped)"
grep -qaF "$MARKER" "$PCAP" && fail wire "the cleartext marker is on the wire"
rm -f "$PCAP"
ok wire "on the underlay bridge only UDP to and from port 51820 ($((pcap_size / 1024 / 1024)) MB captured, $dropped), no cleartext"

show_srv=$(x "$SRV" tvpn show --json) || fail show "tvpn show --json in the server container failed"
show_cli=$(x "$CLI" tvpn show --json) || fail show "tvpn show --json in the client container failed"
problem=$(SHOW_SRV="$show_srv" SHOW_CLI="$show_cli" node -e '
  const s = JSON.parse(process.env.SHOW_SRV), c = JSON.parse(process.env.SHOW_CLI);
  const [T, pub, ip] = [Number(process.argv[1]), process.argv[2], process.argv[3]];
  const p = s.peers.find((x) => x.name === "client");
  const bad = [];
  if (s.role !== "server" || s.interface !== "tun0") bad.push(`server role/interface ${s.role}/${s.interface}`);
  if (!p) bad.push("no peer named client");
  else {
    if (p.publicKey !== pub) bad.push(`peer key ${p.publicKey}`);
    if (p.address !== "10.8.0.10") bad.push(`peer address ${p.address}`);
    if (!new RegExp(`^${ip.replace(/\./g, "\\.")}:\\d+$`).test(p.endpoint ?? "")) bad.push(`peer endpoint ${p.endpoint}`);
    if (!(p.latestHandshake > Date.now() / 1000 - 120)) bad.push(`latest handshake ${p.latestHandshake}`);
    if (!(p.rxBytes > T && p.rxBytes < T * 1.2)) bad.push(`rxBytes ${p.rxBytes}`);
    if (!p.allowedIps.includes("10.8.0.10/32")) bad.push(`allowedIps ${p.allowedIps}`);
  }
  if (c.role !== "client") bad.push(`client role ${c.role}`);
  const tx = c.peers[0]?.txBytes ?? 0;
  if (!(tx > T)) bad.push(`client txBytes ${tx}`);
  if (p && !(Math.abs(tx - p.rxBytes) < 64 * 1024)) bad.push(`client tx ${tx} vs server rx ${p.rxBytes}`);
  process.stdout.write(bad.join("; "));
' "$TRANSFER" "$client_pub" "$CLIENT_IP") || fail show "could not read tvpn show --json: $show_srv"
[ -z "$problem" ] || fail show "$problem"
ok show "tvpn show --json in the server container: peer client, 10.8.0.10, endpoint $CLIENT_IP, fresh handshake, rx bytes matching the transfer and the client's tx"

# The server container stopped (a clean exit 0 from tvpn's SIGTERM handling), removed and
# created anew on the same state volume: the client reconnects by itself, keeps its address,
# and the lease is the one in the volume.
compose stop -t 10 server >/dev/null 2>&1 || fail restart "docker-compose stop server failed"
code=$(DTIMEOUT=20 d inspect -f '{{.State.ExitCode}}' "$SRV") || true
[ "$code" = 0 ] || fail restart "the server container exited with $code on docker stop: $(logs_of "$SRV" | tail -5)"
until_ok 30 "the client to notice" logs_have "$CLI" 'server said bye' || fail restart "the client did not notice the server leaving"
compose rm -f server >/dev/null 2>&1 || fail restart "docker-compose rm server failed"
compose up -d --no-build --no-deps server >>"$WORK/compose.log" 2>&1 || fail restart "docker-compose up server failed"
SRV2=$(compose ps -q server) || true
[ -n "$SRV2" ] && [ "$SRV2" != "$SRV" ] || fail restart "no new server container"
SRV=$SRV2
applied_twice() { local l; l=$(logs_of "$CLI") && [ "$(grep -c 'config 1 applied' <<<"$l")" -ge 2 ]; }
until_ok 60 "the client to reconnect" applied_twice || fail restart "the client did not reconnect to the new server container: $(logs_of "$CLI" | tail -5)"
b=$(addr_of "$CLI")
[ "$b" = 10.8.0.10/24 ] || fail restart "the client's address after the restart is '$b', want 10.8.0.10/24"
leases=$(x "$SRV" cat /var/lib/tvpn/leases.json) || fail restart "no leases.json in the state volume"
LEASES="$leases" node -e '
  const l = JSON.parse(process.env.LEASES).leases;
  if (!l.some((x) => x.name === "client" && x.address === "10.8.0.10")) process.exit(1);
' || fail restart "leases.json in the volume has no lease 10.8.0.10 for client: $leases"
pings "$CLI" 10.8.0.1 || fail restart "no ping through the tunnel after the restart"
ok restart "server container stopped (exit 0), recreated on the same volume: the client reconnected by itself, kept 10.8.0.10 (lease in the volume), ping works"

compose stop -t 10 >/dev/null 2>&1 || fail stop "docker-compose stop failed"
for c in "$SRV" "$CLI"; do
  code=$(DTIMEOUT=20 d inspect -f '{{.State.ExitCode}}' "$c") || true
  [ "$code" = 0 ] || fail stop "container $c exited with $code: $(logs_of "$c" | tail -5)"
done
ok stop "docker-compose stop: both tvpn daemons exit 0 (SIGTERM as PID 1)"
timed checks
