#!/usr/bin/env bash
# The README's demo command: installs the package (in the active virtualenv, or a ./.venv it
# creates) and starts `yokodan demo`: 13 sandbox members and the broker on localhost.
# Arguments go to `yokodan demo` (e.g. --port 8400 --sandbox-port 8410 --index-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh
use_project_python ""
exec yokodan demo "$@"
