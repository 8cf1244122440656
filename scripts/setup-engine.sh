#!/usr/bin/env bash
# Make sure this Debian machine has what imagesmith's tests and demo need:
#   - a Docker engine (26+, containerd image store) with buildx, started if not running
#   - a loopback registry on 127.0.0.1:${IMAGESMITH_REGISTRY_PORT:-5000}
#   - skopeo (registry inspection)
#   - openssl (the token-auth registry test signs its tokens with it)
#   - cosign (Debian 13's package: signs and verifies images, attestations and blobs)
#   - a local Debian bookworm + Python 3.11 base image (imagesmith-base:bookworm-py311),
#     because no container registry can be pulled from here.
#   - with --platforms / IMAGESMITH_PLATFORMS naming a foreign platform (only linux/arm64 on an
#     amd64 host): QEMU registered through binfmt (Debian 12's qemu-user-static, binfmt-support),
#     an arm64 base (imagesmith-base:bookworm-py311-arm64) and a multi-platform base index in the
#     loopback registry (127.0.0.1:PORT/imagesmith-base:bookworm-py311: amd64 + arm64).
# Idempotent: every step checks before it acts. See ../shared/ENVIRONMENT.md for the facts behind it.
set -euo pipefail

STATE=${IMAGESMITH_STATE:-/var/lib/imagesmith-dev}
BASE_IMAGE=${IMAGESMITH_BASE_IMAGE:-imagesmith-base:bookworm-py311}
REGISTRY_PORT=${IMAGESMITH_REGISTRY_PORT:-5000}
REGISTRY_BASE=127.0.0.1:${REGISTRY_PORT}/${BASE_IMAGE}  # the multi-platform index (amd64 + arm64)
PLATFORMS=${IMAGESMITH_PLATFORMS:-}                    # space/comma separated; --platforms wins
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

# Simulate the install of PKG/trixie ... (or plain PKG ...) first and refuse it if it would touch
# anything but the packages named: each PKG/trixie may come from Debian 13 (and must be one of
# TRIXIE_PKGS), plain names and anything else it pulls in must come from the host's release, and no protected package may change or go.
check_install_plan() {
  local plan release arg pkg verb rest named=() from13=() bad=()
  release=$(. /etc/os-release && echo "$VERSION_ID")
  for arg in "$@"; do
    pkg=${arg%/trixie}
    named+=("$pkg")
    [ "$pkg" = "$arg" ] && continue  # named without /trixie: must come from the host's release
    if [[ " $TRIXIE_PKGS " != *" $pkg "* ]]; then log "refusing to take $pkg from Debian 13: not one of $TRIXIE_PKGS"; exit 1; fi
    from13+=("$pkg")
  done
  plan=$(apt-get install -s --no-install-recommends "$@" 2>&1) || { echo "$plan" >&2; log "apt cannot install $*"; exit 1; }
  while read -r verb pkg rest; do
    case "$verb" in
      Remv) bad+=("removes $pkg") ;;
      Inst)
        if [[ " $PROTECTED_PKGS " == *" $pkg "* ]]; then bad+=("changes $pkg"); continue; fi
        if [[ " ${from13[*]-} " != *" $pkg "* ]] && ! [[ "$rest" =~ Debian(-Security)?:${release}[./] ]]; then
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
  # GOGC=400 (Go's default is 100) for dockerd and the containerd it starts (the environment is
  # inherited; builds and containers get their own): a CPU profile of both daemons over a whole
  # `make test` (2026-12-07, bench/README.md "Where make test's CPU goes") had Go's garbage
  # collector at a quarter of dockerd's CPU with a live heap under 100 MB; collecting 4x less
  # often: dockerd's resident memory after whole test runs read 356 MB before, 395 and 461 MB
  # after (single readings, on different code; its live heap 78 -> 85 MB). Only an engine this
  # script starts: a running one is left as its owner
  # configured it.
  GOGC=400 setsid /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
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
  # the token-auth registry test signs its JWTs with the openssl CLI (priority optional: a minimal
  # Debian 12 lacks it)
  command -v openssl >/dev/null || need+=(openssl)
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

# A Debian bookworm + Python 3.11 root file system for ARCH (a Debian architecture), as a tarball
# cached in $STATE: a cached tarball is used when it is whole (non-empty, readable by tar); a failed
# debootstrap leaves none (written under a temporary name, renamed when complete).
rootfs_tarball() {
  local arch=$1 tarball="$STATE/rootfs-bookworm-$1.tar" root="$STATE/rootfs-bookworm-$1"
  if [ -s "$tarball" ] && tar -tf "$tarball" >/dev/null 2>&1; then echo "$tarball"; return; fi
  rm -f "$tarball" "$tarball.tmp"
  rm -rf "$root"
  debootstrap --variant=minbase --arch="$arch" \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$(debian_uris)" >"$STATE/debootstrap-$arch.log" 2>&1 \
    || { tail -n 30 "$STATE/debootstrap-$arch.log" >&2; rm -rf "$root"; exit 1; }
  # Trust the host's CA bundle so pip inside containers reaches the package index.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # Debian's apt caches and logs vary by run; drop them.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  echo "$tarball"
}

# import_base ARCH IMAGE: the rootfs for ARCH imported as IMAGE (platform linux/ARCH).
import_base() {
  local tarball
  tarball=$(rootfs_tarball "$1")
  docker import --platform "linux/$1" \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' "$tarball" "$2" >/dev/null
}

image_arch() { docker image inspect --format '{{.Os}}/{{.Architecture}}' "$1" 2>/dev/null; }

make_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "making base image $BASE_IMAGE with debootstrap (about a minute)"
  import_base "$(dpkg --print-architecture)" "$BASE_IMAGE"
}

# ---- Foreign platforms (QEMU through binfmt) -----------------------------------------------

# The platforms asked for, one per line, without the host's own; only linux/arm64 is supported.
foreign_platforms() {
  local p host
  host="linux/$(dpkg --print-architecture)"
  for p in ${PLATFORMS//,/ }; do
    [ "$p" = "$host" ] && continue
    case "$p" in
      linux/arm64) [ "$host" = linux/amd64 ] && echo "$p" || { log "platform $p on a $host host is not supported by this script"; exit 1; } ;;
      linux/amd64) log "platform $p on a $host host is not supported by this script"; exit 1 ;;
      *) log "unknown platform '$p': this script sets up linux/amd64 (native) and linux/arm64 (QEMU)"; exit 1 ;;
    esac
  done | sort -u
}

binfmt_enabled() { [ "$(head -n 1 "/proc/sys/fs/binfmt_misc/qemu-$1" 2>/dev/null)" = enabled ]; }

# QEMU user emulation registered with the kernel for ARCH (uname -m name, e.g. aarch64).
install_qemu() {
  local arch=$1 need=()
  for pkg in qemu-user-static binfmt-support; do
    [ "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} (Debian 12's own)"
    apt_update
    check_install_plan "${need[@]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    log "mounting binfmt_misc on /proc/sys/fs/binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if ! binfmt_enabled "$arch"; then
    log "enabling qemu-$arch in binfmt_misc"
    update-binfmts --enable "qemu-$arch"
  fi
  binfmt_enabled "$arch" || { log "qemu-$arch is still not enabled in /proc/sys/fs/binfmt_misc"; exit 1; }
}

# The engine's builder lists PLATFORM and a container of IMAGE runs as MACHINE.
check_emulation() {
  local platform=$1 image=$2 machine=$3 got
  if ! docker buildx inspect 2>/dev/null | grep '^Platforms:' | grep -q "$platform"; then
    log "the engine's builder does not list $platform although qemu is registered (docker buildx inspect);"
    log "dockerd may have to be restarted to see the new binfmt handler"
    exit 1
  fi
  got=$(docker run --rm --platform "$platform" "$image" uname -m 2>&1) || true
  if [ "$got" != "$machine" ]; then
    log "a $platform container of $image printed '$got' for uname -m, not $machine"; exit 1
  fi
}

# The local single-platform base for a foreign ARCH (Debian name): BASE_IMAGE-ARCH.
make_foreign_base() {
  local arch=$1 image="$BASE_IMAGE-$1"
  if [ "$(image_arch "$image")" = "linux/$arch" ]; then return; fi
  if ! [ -s "$STATE/rootfs-bookworm-$arch.tar" ]; then
    log "making base image $image with debootstrap under QEMU (about 4 minutes)"
  fi
  import_base "$arch" "$image"
}

# A registry manifest's digest, or nothing when the tag is absent.
registry_digest() {
  docker buildx imagetools inspect --format '{{json .Manifest}}' "$1" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])' 2>/dev/null || true
}

# "PLATFORM DIGEST" lines of a registry index, sorted; nothing when it is not an index.
index_entries() {
  docker buildx imagetools inspect --raw "$1" 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)
for m in doc.get("manifests", []):
    p = m.get("platform", {})
    print(p.get("os", "") + "/" + p.get("architecture", ""), m["digest"])' 2>/dev/null | sort || true
}

# REGISTRY_BASE: an image index of the local bases, each also pushed as REGISTRY_BASE-ARCH.
# Skipped when the index's entries are the registry's copies of the local images.
make_registry_base() {
  local arch ref want=() entries=() digest
  for arch in "$@"; do
    ref="$REGISTRY_BASE-$arch"
    local image="$BASE_IMAGE-$arch"
    [ "$arch" = "$(dpkg --print-architecture)" ] && image=$BASE_IMAGE
    digest=$(registry_digest "$ref")
    if [ "$digest" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
      log "pushing $image as $ref"
      docker tag "$image" "$ref"
      docker push -q "$ref" >/dev/null
      digest=$(registry_digest "$ref")
    fi
    want+=("linux/$arch $digest")
    entries+=("$ref@$digest")
  done
  if [ "$(index_entries "$REGISTRY_BASE")" = "$(printf '%s\n' "${want[@]}" | sort)" ]; then return; fi
  log "making the multi-platform base $REGISTRY_BASE (${*})"
  docker buildx imagetools create -t "$REGISTRY_BASE" "${entries[@]}" >/dev/null 2>"$STATE/imagetools.log" \
    || { cat "$STATE/imagetools.log" >&2; exit 1; }
  if [ "$(index_entries "$REGISTRY_BASE")" != "$(printf '%s\n' "${want[@]}" | sort)" ]; then
    log "$REGISTRY_BASE is not the index of ${entries[*]}:"; index_entries "$REGISTRY_BASE" >&2; exit 1
  fi
}

setup_platforms() {
  local platform arch machine arches=()
  for platform in $(foreign_platforms); do
    arch=${platform#linux/}
    machine=aarch64  # linux/arm64 is the only foreign platform foreign_platforms lets through
    timed "qemu for $platform" install_qemu "$machine"
    timed "base image $BASE_IMAGE-$arch" make_foreign_base "$arch"
    timed "emulation check" check_emulation "$platform" "$BASE_IMAGE-$arch" "$machine"
    arches+=("$arch")
  done
  [ ${#arches[@]} -gt 0 ] || return 0
  timed "registry base $REGISTRY_BASE" make_registry_base "$(dpkg --print-architecture)" "${arches[@]}"
}

# timed LABEL CMD...: run CMD, then log how long it took (seconds).
timed() {
  local label=$1 t0=$SECONDS
  shift
  "$@"
  log "$label: $((SECONDS - t0)) s"
}

main() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --platforms) [ $# -ge 2 ] || { log "--platforms needs a value, e.g. linux/arm64"; exit 2; }
                   PLATFORMS=$2; shift 2 ;;
      --platforms=*) PLATFORMS=${1#--platforms=}; shift ;;
      *) log "unknown argument '$1' (usage: setup-engine.sh [--platforms linux/arm64])"; exit 2 ;;
    esac
  done
  foreign_platforms >/dev/null  # an unknown platform stops the script before anything is installed
  install_engine
  start_engine
  install_tools
  install_cosign
  start_registry
  make_base
  setup_platforms
  log "ready: engine $(docker version --format '{{.Server.Version}}'), buildx $(docker buildx version | awk '{print $2}'), base $BASE_IMAGE, registry 127.0.0.1:${REGISTRY_PORT}, cosign $(dpkg-query -W -f '${Version}' cosign 2>/dev/null || echo '(not from Debian)')${PLATFORMS:+, platforms $PLATFORMS}"
}

# Sourced (by the tests of check_install_plan), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
