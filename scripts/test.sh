#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them.
# This is the README's test command; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Zebra (a real SRU catalogue server) and YAZ's MARC tools for the integration tests.
if ! command -v zebrasrv >/dev/null 2>&1 || ! command -v yaz-marcdump >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq idzebra-2.0 yaz >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m pytest -q "$@"
