#!/usr/bin/env bash
# Make CIFAR-10 available for the labs, offline first.
#
#   LABKIT_CIFAR10 set        -> used as it is
#   data/cifar10 exists       -> used as it is
#   $DATASETS/cifar10-jpg.tar.gz (default ../shared/datasets) -> unpacked to data/cifar10
#   otherwise, with --download -> torchvision downloads it (online machines)
#   otherwise                  -> nothing; the tests then use generated stand-ins
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${DATASETS:-../shared/datasets}
archive="$DATASETS/cifar10-jpg.tar.gz"

if [ -n "${LABKIT_CIFAR10:-}" ]; then
  echo "CIFAR-10: LABKIT_CIFAR10=$LABKIT_CIFAR10"
elif [ -d data/cifar10 ]; then
  echo "CIFAR-10: data/cifar10"
elif [ -f "$archive" ]; then
  echo "CIFAR-10: unpacking $archive to data/cifar10"
  rm -rf data/cifar10.partial && mkdir -p data/cifar10.partial
  tar -xzf "$archive" -C data/cifar10.partial
  mv data/cifar10.partial data/cifar10
elif [ "${1:-}" = "--download" ]; then
  .venv/bin/python -c "from labkit import load_cifar10; print(load_cifar10(train_per_class=1, test_per_class=1).describe())"
else
  echo "CIFAR-10: none found (set LABKIT_CIFAR10, or DATASETS=<folder with cifar10-jpg.tar.gz>)"
fi
