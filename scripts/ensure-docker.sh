#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one on a root Debian box
# (no systemd needed), plus debootstrap for building the base image offline.
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }
engine_up() { docker info >/dev/null 2>&1; }
as_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if as_root && command -v apt-get >/dev/null 2>&1; then
    apt_install "${missing[@]}"
  elif ! engine_up; then
    log "no Docker engine and cannot install one (need root on Debian): ${missing[*]}"
    exit 1
  fi
fi

if engine_up; then
  exit 0
fi
as_root || { log "the Docker engine is not running and only root can start it"; exit 1; }

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  log "starting docker with systemctl"
  systemctl start docker
else
  log "starting dockerd (no systemd): log in /var/log/codebeaker-dockerd.log"
  # No bridge and no iptables: sandboxes run with NetworkMode none, and image builds use
  # the host network, so the engine needs neither (and many CI boxes cannot give them).
  nohup dockerd --bridge=none --iptables=false >/var/log/codebeaker-dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  engine_up && { log "engine is up"; exit 0; }
  sleep 1
done
log "the Docker engine did not answer within 60 s; see /var/log/codebeaker-dockerd.log"
exit 1
