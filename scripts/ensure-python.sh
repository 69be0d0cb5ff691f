#!/usr/bin/env bash
# Make sure a python3 that can create a venv exists; on a root Debian box install it.
set -euo pipefail
python="${1:-python3}"
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-python: installing python3 and python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  exit 0
fi
echo "ensure-python: $python cannot create a venv; install python3-venv (needs root)" >&2
exit 1
