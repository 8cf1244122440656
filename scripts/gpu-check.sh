#!/usr/bin/env bash
# This machine's NVIDIA GPUs against the CUDA of a lock or a built image's facts, with nothing but
# this checkout and Python 3.8 or newer (no engine, no network, no installed packages: python3 -S).
#
#   scripts/gpu-check.sh imagesmith.lock [--platform linux/amd64] [--json]
#   scripts/gpu-check.sh imagesmith_image.json        # an image's facts file (docker cp it out)
#
# Prints the contract (CUDA, minimum driver, which packages bring it) and one line per GPU.
# Exit 0: every GPU's driver runs it; 1: a driver is too old; 2: no NVIDIA GPU, or a bad file.
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
file="$1"
shift
case "$file" in
  *.lock) kind=--lock ;;
  *) kind=--facts ;;
esac
exec python3 -S -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from imagesmith.gpu_host import main; sys.exit(main(sys.argv[1:]))' \
  "$root" "$kind" "$file" "$@"
