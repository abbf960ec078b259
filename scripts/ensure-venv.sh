#!/usr/bin/env bash
# Create the project virtualenv; on a bare Debian the venv module lives in python3-venv.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
if [ -x "$venv/bin/python" ]; then exit 0; fi
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing python3-venv (Debian keeps the venv module there)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    "$python" -m venv "$venv"
  else
    echo "setup: '$python -m venv' failed. Install your distribution's venv package (Debian: apt-get install python3-venv) or run as root." >&2
    exit 1
  fi
fi
