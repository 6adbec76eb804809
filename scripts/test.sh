#!/usr/bin/env bash
# The README's test command; .ci/run runs exactly this. Installs what the tests need on a fresh
# Debian machine (Zebra and YAZ with apt-get when missing; the package with its test extras in the
# active virtualenv, or a ./.venv it creates), then runs pytest. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_python.sh

# Zebra (a real SRU catalogue server) and YAZ's MARC tools for the integration tests.
if ! command -v zebrasrv >/dev/null 2>&1 || ! command -v yaz-marcdump >/dev/null 2>&1; then
  _yokodan_apt_install idzebra-2.0 yaz
fi
# curl: tests/test_readme_commands.py runs the README's curl lines as a person would.
command -v curl >/dev/null 2>&1 || _yokodan_apt_install curl
# Debian's Chromium (and a Japanese font for legible screenshots): tests/test_pages_browser.py drives it with
# Playwright, whose own browser download is not available here.
[ -x /usr/bin/chromium ] || _yokodan_apt_install chromium fonts-ipafont-gothic

use_project_python "test"
exec python -m pytest -q -p no:cacheprovider "$@"
