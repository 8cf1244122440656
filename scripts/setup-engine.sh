#!/usr/bin/env bash
# Make sure this Debian machine has what imagesmith's tests and demo need:
#   - a Docker engine (26+, containerd image store) with buildx, started if not running
#   - a loopback registry on 127.0.0.1:${IMAGESMITH_REGISTRY_PORT:-5000}
#   - skopeo (registry inspection)
#   - cosign (Debian 13's package: signs and verifies images, attestations and blobs)
#   - a local Debian bookworm + Python 3.11 base image (imagesmith-base:bookworm-py311),
#     because no container registry can be pulled from here.
# Idempotent: every step checks before it acts. See ../shared/ENVIRONMENT.md for the facts behind it.
set -euo pipefail

STATE=${IMAGESMITH_STATE:-/var/lib/imagesmith-dev}
BASE_IMAGE=${IMAGESMITH_BASE_IMAGE:-imagesmith-base:bookworm-py311}
REGISTRY_PORT=${IMAGESMITH_REGISTRY_PORT:-5000}
mkdir -p "$STATE"
log() { printf '[setup] %s\n' "$*" >&2; }

debian_uris() {
  # The mirror this machine already uses (first URIs line of the Debian sources); never hard-coded.
  awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources
}

apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { apt-get update -qq >/dev/null; apt_updated=1; }; }

# Packages this script may take from Debian 13 (the engine and cosign, nothing else), and host
# packages that must never change. Everything else an install pulls in must come from the host's
# own release. check_install_plan allows from Debian 13 only the packages its caller names.
TRIXIE_PKGS="docker.io docker-cli docker-buildx containerd cosign"
PROTECTED_PKGS="libc6 libc-bin python3 python3-minimal python3.11 python3.11-minimal libpython3.11-stdlib base-files dpkg apt"

engine_running() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# An engine that already runs is used as it is when it fits; otherwise say exactly what is wrong.
check_existing_engine() {
  local version major store
  version=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || return 1
  major=${version%%.*}
  if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 24 ]; then
    log "the running Docker engine is $version; imagesmith needs 24 or newer (26 tested). Upgrade it, or stop it and run this script again to install Debian 13's engine."
    exit 1
  fi
  if ! docker buildx version >/dev/null 2>&1; then
    log "the running Docker engine ($version) has no buildx plugin: install docker-buildx (Debian 13: apt-get install docker-buildx/trixie) or Docker's buildx plugin."
    exit 1
  fi
  store=$(docker info --format '{{range .DriverStatus}}{{index . 0}}={{index . 1}};{{end}}' 2>/dev/null || true)
  if [[ "$store" != *"io.containerd.snapshotter"* ]]; then
    log "the running Docker engine ($version) uses the classic image store; imagesmith needs the containerd image store: add {\"features\":{\"containerd-snapshotter\":true}} to /etc/docker/daemon.json and restart dockerd."
    exit 1
  fi
  return 0
}

# Simulate the install of PKG/trixie ... first and refuse it if it would touch anything but the
# packages named: each of them may come from Debian 13 (and must be one of TRIXIE_PKGS), anything
# else it pulls in must come from the host's release, and no protected package may change or go.
check_install_plan() {
  local plan release arg pkg verb rest named=() bad=()
  release=$(. /etc/os-release && echo "$VERSION_ID")
  for arg in "$@"; do
    pkg=${arg%/trixie}
    if [[ " $TRIXIE_PKGS " != *" $pkg "* ]]; then log "refusing to take $pkg from Debian 13: not one of $TRIXIE_PKGS"; exit 1; fi
    named+=("$pkg")
  done
  plan=$(apt-get install -s --no-install-recommends "$@" 2>&1) || { echo "$plan" >&2; log "apt cannot install $*"; exit 1; }
  while read -r verb pkg rest; do
    case "$verb" in
      Remv) bad+=("removes $pkg") ;;
      Inst)
        if [[ " $PROTECTED_PKGS " == *" $pkg "* ]]; then bad+=("changes $pkg"); continue; fi
        if [[ " ${named[*]} " != *" $pkg "* ]] && ! [[ "$rest" =~ Debian(-Security)?:${release}[./] ]]; then
          bad+=("takes $pkg from another Debian release")
        fi ;;
    esac
  done <<< "$plan"
  if [ ${#bad[@]} -gt 0 ]; then
    log "refusing to install ${named[*]}: the install would change the host beyond them (${bad[*]})."
    log "install ${named[*]} yourself (Docker: 24+ with buildx, started with the containerd image store), and run this script again."
    exit 1
  fi
}

# Debian 13 known to apt but never preferred: only packages named pkg/trixie come from it.
trixie_source() {
  if ! [ -f /etc/apt/sources.list.d/trixie.sources ]; then
    awk 'BEGIN{RS="";ORS="\n\n"} NR==1' /etc/apt/sources.list.d/debian.sources \
      | sed -e 's/^Suites:.*/Suites: trixie/' > /etc/apt/sources.list.d/trixie.sources
    apt_updated=0
  fi
  [ -f /etc/apt/preferences.d/trixie-low ] \
    || printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-low
}

install_engine() {
  if engine_running; then check_existing_engine; return; fi
  if ! [ -x /usr/sbin/dockerd ] || ! [ -x /usr/libexec/docker/cli-plugins/docker-buildx ]; then
    log "installing the Docker engine and buildx (Debian 13's packages, named one by one; nothing else from 13)"
    trixie_source
    apt_update
    local pkgs=(docker.io/trixie docker-cli/trixie docker-buildx/trixie containerd/trixie)
    check_install_plan "${pkgs[@]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  mkdir -p /etc/docker
  if ! [ -f /etc/docker/daemon.json ]; then
    echo '{"features":{"containerd-snapshotter":true}}' > /etc/docker/daemon.json
  fi
}

start_engine() {
  if engine_running; then return; fi
  log "starting dockerd"
  setsid /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not start; see /var/log/dockerd.log"; tail -n 20 /var/log/dockerd.log >&2; exit 1
}

install_tools() {
  local need=()
  command -v skopeo >/dev/null || need+=(skopeo)
  command -v docker-registry >/dev/null || need+=(docker-registry)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# cosign (signing, issue 12): Debian 13's package, alone (bookworm has none). Kept when present.
install_cosign() {
  if command -v cosign >/dev/null; then return; fi
  log "installing cosign (Debian 13's package, alone)"
  trixie_source
  apt_update
  check_install_plan cosign/trixie
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cosign/trixie >/dev/null
}

start_registry() {
  if curl -fsS "http://127.0.0.1:${REGISTRY_PORT}/v2/" >/dev/null 2>&1; then return; fi
  log "starting registry on 127.0.0.1:${REGISTRY_PORT}"
  mkdir -p "$STATE/registry"
  cat > "$STATE/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${REGISTRY_PORT}
YML
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 30); do
    curl -fsS "http://127.0.0.1:${REGISTRY_PORT}/v2/" >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "registry did not start; see $STATE/registry.log"; exit 1
}

make_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "making base image $BASE_IMAGE with debootstrap (about a minute)"
  local root="$STATE/rootfs-bookworm"
  rm -rf "$root"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$(debian_uris)" >"$STATE/debootstrap.log" 2>&1 \
    || { tail -n 30 "$STATE/debootstrap.log" >&2; exit 1; }
  # Trust the host's CA bundle so pip inside containers reaches the package index.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # Debian's apt caches and logs vary by run; drop them.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

main() {
  install_engine
  start_engine
  install_tools
  install_cosign
  start_registry
  make_base
  log "ready: engine $(docker version --format '{{.Server.Version}}'), buildx $(docker buildx version | awk '{print $2}'), base $BASE_IMAGE, registry 127.0.0.1:${REGISTRY_PORT}, cosign $(dpkg-query -W -f '${Version}' cosign 2>/dev/null || echo '(not from Debian)')"
}

# Sourced (by the tests of check_install_plan), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
