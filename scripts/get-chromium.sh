#!/usr/bin/env bash
# Installs Debian's chromium for the report page's test (headless: every plot loads, no console
# error). Never fails the caller: without it, that one test is skipped and says why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and apt-get is not available; the report page test will skip."
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
echo "chromium: installing Debian's chromium for the report page test ..."
if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
   || { $sudo apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null 2>&1; }; then
  echo "chromium: installed."
else
  echo "chromium: could not install it (no root or no network); the report page test will skip."
  echo "  To get it later: sudo apt-get install -y chromium"
fi
exit 0
