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
# jemalloc: tests/test_allocator.py checks that the broker serves on it.
_yokodan_have_jemalloc || _yokodan_apt_install libjemalloc2
# curl: tests/test_readme_commands.py runs the README's curl lines as a person would.
command -v curl >/dev/null 2>&1 || _yokodan_apt_install curl
# Debian's Chromium (and a Japanese font for legible screenshots): tests/test_pages_browser.py drives it with
# Playwright, whose own browser download is not available here.
[ -x /usr/bin/chromium ] || _yokodan_apt_install chromium fonts-ipafont-gothic

# PostgreSQL for the shared hold ledger's tests (two broker nodes on one database). Machines of this
# kind run one on 127.0.0.1 with trust auth; a fresh Debian machine gets Debian's package, its cluster
# started, a superuser role for this user and a `test` database, reached over the Unix socket (peer auth).
if ! pg_isready -q -h 127.0.0.1 2>/dev/null && ! pg_isready -q 2>/dev/null; then
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || _yokodan_apt_install postgresql
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
  for _ in $(seq 1 30); do pg_isready -q && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -d test -c 'select 1' >/dev/null 2>&1; then
  me="$(id -un)"
  if [ "$me" = "root" ] && id postgres >/dev/null 2>&1; then
    su postgres -c "psql -tAc \"select 1 from pg_roles where rolname = '$me'\" | grep -q 1 || createuser -s '$me'" || true
    su postgres -c "psql -tAc \"select 1 from pg_database where datname = 'test'\" | grep -q 1 || createdb -O '$me' test" || true
  fi
  export YOKODAN_TEST_POSTGRES="${YOKODAN_TEST_POSTGRES:-postgresql:///test?host=/var/run/postgresql}"
fi

use_project_python "test"
exec python -m pytest -q -p no:cacheprovider "$@"
