#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io when
# the daemon is missing (root only), start dockerd when it is installed but not running.
# Safe to run twice: an engine that already answers is left alone.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "dockerd is not installed; run as root or install docker.io first" >&2; exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p /var/log
  echo "starting dockerd (log: /var/log/boatload-dockerd.log)"
  nohup dockerd >/var/log/boatload-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || { echo "Docker engine did not come up; see /var/log/boatload-dockerd.log" >&2; exit 1; }
