# Sourced by scripts/demo.sh and scripts/test.sh (not run on its own): one Python for the project.
#
# Uses the active virtualenv ($VIRTUAL_ENV) when there is one; otherwise creates ./.venv with
# `python3 -m venv`, because a stock Debian python3 refuses `pip install` outside a venv (PEP 668,
# externally-managed-environment). Debian ships the venv module separately: python3-venv is
# installed with apt-get when creating the venv fails for want of it.
#
# --system-site-packages lets the venv reuse whatever the machine already has (CI machines come
# with the dependencies), so pip only fetches what is missing or too old. The editable install is
# skipped while pyproject.toml and the extras are unchanged (a stamp in the venv), which keeps a
# second run of either command at a few hundred milliseconds.

_yokodan_apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# jemalloc, which `yokodan serve` and `demo` run on when it is there (broker/allocator.py: memory
# goes back to the system after a burst); Debian's libjemalloc2.
_yokodan_have_jemalloc() {
  "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep -q 'libjemalloc\.so\.2 '
}

_yokodan_create_venv() {
  local venv="$1"
  python3 -m venv --system-site-packages "$venv" 2>/dev/null && return 0
  rm -rf "$venv"  # a failed attempt leaves a venv without pip behind
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "yokodan: 'python3 -m venv' failed; install your system's venv package, or activate a virtualenv" >&2
    return 1
  fi
  local version
  version="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  echo "yokodan: installing Debian's python3-venv (python3 -m venv needs it)" >&2
  _yokodan_apt_install python3-venv "python${version}-venv" || _yokodan_apt_install python3-venv
  python3 -m venv --system-site-packages "$venv"
}

# use_project_python EXTRAS: afterwards `python` and `yokodan` on PATH are the project's, installed
# (editable) with the given extras ("" or "test").
use_project_python() {
  local extras="$1" venv
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    venv="$VIRTUAL_ENV"
    if [ ! -x "$venv/bin/python" ]; then
      echo "yokodan: VIRTUAL_ENV=$venv has no bin/python; deactivate it or point it at a virtualenv" >&2
      return 1
    fi
  else
    venv="$PWD/.venv"
    [ -x "$venv/bin/python" ] || _yokodan_create_venv "$venv"
  fi
  export VIRTUAL_ENV="$venv"
  export PATH="$venv/bin:$PATH"
  local target="." stamp="$venv/.yokodan-installed" wanted
  [ -z "$extras" ] || target=".[$extras]"
  wanted="$PWD $target $(sha256sum pyproject.toml | cut -d' ' -f1)"
  # An install with more extras also satisfies a later one with fewer (test.sh, then demo.sh).
  if [ -f "$stamp" ] && grep -qxF -e "$wanted" -e "$PWD .[test] ${wanted##* }" "$stamp"; then
    return 0
  fi
  python -m pip install -q --disable-pip-version-check -e "$target"
  echo "$wanted" > "$stamp"
}
