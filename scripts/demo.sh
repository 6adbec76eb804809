#!/usr/bin/env bash
# The README's demo command: installs the package (in the active virtualenv, or a ./.venv it
# creates) and starts `yokodan demo`: 13 sandbox members and the broker on localhost.
# Arguments go to `yokodan demo` (e.g. --port 8400 --sandbox-port 8410 --index-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh
use_project_python ""
# jemalloc when it can be had without asking for a password; without it the broker runs on
# CPython's allocator and says so.
if ! _yokodan_have_jemalloc && command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
  _yokodan_apt_install libjemalloc2 2>/dev/null || true
fi
exec yokodan demo "$@"
