#!/usr/bin/env bash
# Make the labs' datasets available, offline first. For each of CIFAR-10, MNIST, Fashion-MNIST:
#
#   LABKIT_CIFAR10 (LABKIT_MNIST, LABKIT_FASHION_MNIST) set -> used as it is
#   data/<dataset> exists ($LABKIT_DATA/<dataset>)          -> used as it is
#   an archive in $DATASETS (default ../shared/datasets)      -> imported and checked:
#       cifar10-jpg.tar.gz, mnist-png.tar.gz
#   Fashion-MNIST: Debian's dataset-fashion-mnist installed  -> used where it is
#   otherwise, with --download                                -> torchvision downloads it
#   otherwise                                                 -> nothing; without CIFAR-10
#                                                                the tests use generated stand-ins
#
# Imports and downloads go through `python -m labkit.data prepare`, which checks the images
# per class and the official checksums and builds the decoded-image cache. A failed CIFAR-10
# import or download fails this script (five of the six labs load it); MNIST and
# Fashion-MNIST only warn: the labs that use them (Days 2 and 6) download them where they
# are missing, which an offline grading server cannot (prepare them there).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-../shared/datasets}
ROOT=${LABKIT_DATA:-data}
PY=.venv/bin/python
download=0
[ "${1:-}" = "--download" ] && download=1

# provide KEY NAME VARIABLE ARCHIVE REQUIRED
provide() {
  local key=$1 name=$2 var=$3 archive=$4 required=$5
  local args=()
  if [ -n "${!var:-}" ]; then
    echo "$name: $var=${!var}"
    return 0
  elif [ -d "$ROOT/$key" ]; then
    echo "$name: $ROOT/$key"
    return 0
  elif [ -n "$archive" ] && [ -f "$archive" ]; then
    echo "$name: importing $archive into $ROOT/$key"
    args=(--from "$archive")
  elif [ -d "/usr/share/datasets/$key" ]; then
    echo "$name: /usr/share/datasets/$key (Debian package dataset-$key)"
    return 0
  elif [ "$download" = 1 ]; then
    echo "$name: downloading with torchvision into $ROOT/$key"
  elif [ "$required" = 1 ]; then
    echo "$name: none found (set $var, or DATASETS=<folder with $(basename "$archive")>," \
      "or run with --download); the tests will use generated stand-ins"
    return 0
  else
    echo "$name: none found (set $var, or run with --download); labs that need it download it"
    return 0
  fi
  if ! "$PY" -m labkit.data prepare "$key" ${args[@]+"${args[@]}"}; then
    [ "$required" = 1 ] && exit 1
    echo "$name: not prepared (see above); the labs that need it say how to provide it"
  fi
}

# CIFAR-10 and MNIST side by side: an import is mostly creating files (130,000 between
# them) and decoding them; this script took 39 s so against 95 s one after the other, on
# two cores. Each one's lines are shown whole once it is done.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "CIFAR-10 and MNIST: preparing side by side (an import takes about half a minute)"
provide cifar10 CIFAR-10 LABKIT_CIFAR10 "$DATASETS/cifar10-jpg.tar.gz" 1 >"$logs/cifar10" 2>&1 &
cifar10=$!
provide mnist MNIST LABKIT_MNIST "$DATASETS/mnist-png.tar.gz" 0 >"$logs/mnist" 2>&1 &
mnist=$!
failed=0
wait "$cifar10" || failed=1
cat "$logs/cifar10"
wait "$mnist" || true
cat "$logs/mnist"
[ "$failed" = 0 ] || exit 1
provide fashion-mnist Fashion-MNIST LABKIT_FASHION_MNIST "" 0
