#!/usr/bin/env bash
# Refresh the playground's vendored front-end files (codebeaker/playground/static/vendor/)
# from the npm registry: CodeMirror 5 (editor, four modes, one theme) and xterm.js with its
# fit add-on, each with its LICENSE. The result is committed, so `make run` needs no npm;
# run this only to change a version (edit the pins below), then commit what it wrote.
# `npm pack` checks every tarball against the registry's integrity hash.
set -euo pipefail

CODEMIRROR=5.65.21
XTERM=6.0.0
XTERM_FIT=0.11.0

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/codebeaker/playground/static/vendor"
log() { echo "vendor-frontend: $*" >&2; }

command -v npm >/dev/null 2>&1 || {
  log "npm is missing (on Debian: apt-get install -y npm)"
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# unpack NAME@VERSION DIR: the package's files under $work/DIR
unpack() {
  local spec="$1" dir="$2" tarball
  tarball="$(cd "$work" && npm pack --silent "$spec" 2>/dev/null | tail -n 1)"
  [ -f "$work/$tarball" ] || { log "npm pack $spec failed"; exit 1; }
  mkdir -p "$work/$dir"
  tar -xzf "$work/$tarball" -C "$work/$dir" --strip-components=1
  sha256sum "$work/$tarball" | awk -v spec="$spec" '{print spec "  sha256:" $1}' >>"$work/VERSIONS"
}

unpack "codemirror@$CODEMIRROR" codemirror
unpack "@xterm/xterm@$XTERM" xterm
unpack "@xterm/addon-fit@$XTERM_FIT" xterm-addon-fit

rm -rf "$vendor"
mkdir -p "$vendor/codemirror/mode" "$vendor/codemirror/theme" "$vendor/xterm" "$vendor/xterm-addon-fit"

cm="$work/codemirror"
cp "$cm/lib/codemirror.js" "$cm/lib/codemirror.css" "$cm/LICENSE" "$vendor/codemirror/"
for mode in clike python go javascript; do
  cp "$cm/mode/$mode/$mode.js" "$vendor/codemirror/mode/"
done
cp "$cm/theme/material-darker.css" "$vendor/codemirror/theme/"

cp "$work/xterm/lib/xterm.js" "$work/xterm/css/xterm.css" "$work/xterm/LICENSE" "$vendor/xterm/"
cp "$work/xterm-addon-fit/lib/addon-fit.js" "$work/xterm-addon-fit/LICENSE" "$vendor/xterm-addon-fit/"
# The minified bundles name source maps that are not shipped; drop the reference so
# browsers' developer tools do not ask the server for them.
sed -i '/^\/\/# sourceMappingURL=/d' "$vendor/xterm/xterm.js" "$vendor/xterm-addon-fit/addon-fit.js"

{
  echo "# Written by scripts/vendor-frontend.sh; npm tarballs these files came from."
  cat "$work/VERSIONS"
} >"$vendor/VERSIONS"
log "vendored into ${vendor#"$root"/}:"
sed 1d "$vendor/VERSIONS" >&2
du -sh "$vendor" >&2
