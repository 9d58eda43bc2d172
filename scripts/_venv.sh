# Sourced by the scripts: make .venv (Python >= 3.11) and install the project into it.
# Usage: venv_install [EXTRA]   e.g. venv_install test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv_install() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "acode-placement needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 2
  fi
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  local spec="."
  [ -n "${1:-}" ] && spec=".[$1]"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$spec"
}
