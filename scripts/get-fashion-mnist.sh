#!/usr/bin/env bash
# Installs Fashion-MNIST from Debian's package when it is missing and apt can do it.
# Never fails the caller: without the data, deepatlas still runs on the embedded digits set.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST: found in $dir"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Fashion-MNIST: not installed and apt-get is not available; going on without it."
  echo "  (get the IDX .gz files and point deepatlas at them with --set data.dir=DIR or DEEPATLAS_DATA=DIR)"
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist into $dir ..."
if $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
   || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; then
  echo "Fashion-MNIST: installed."
else
  echo "Fashion-MNIST: could not install it (no root or no network); going on without it."
  echo "  To get it later: sudo apt-get install -y dataset-fashion-mnist"
fi
exit 0
