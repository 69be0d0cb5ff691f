#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the playground's browser test
# (tests/integration/test_playground.py drives /usr/bin/chromium with Playwright; no browser
# is ever downloaded). Idempotent and quick when it is there already.
set -euo pipefail

log() { echo "ensure-browser: $*" >&2; }
browser="${CODEBEAKER_CHROMIUM:-/usr/bin/chromium}"

[ -x "$browser" ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing chromium (Debian's package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  [ -x "$browser" ] && exit 0
  log "chromium installed but $browser is missing"
  exit 1
fi
log "$browser is missing and cannot be installed here (need root on Debian: apt-get install" \
  "chromium); the playground's browser test skips without it, and fails under CI=true"
# Only the browser test needs it: `make run` goes on, CI stops here.
[ "${CI:-}" = "true" ] && exit 1
exit 0
