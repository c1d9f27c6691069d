#!/usr/bin/env bash
# Start what the test suite talks to: a real Postgres (role and database created) and a
# real Docker engine, and build the busybox test image with `docker import` (no registry).
# Safe to run twice.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx wget || need_apt+=(busybox-static)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the console's browser tests (Selenium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Postgres: the Debian cluster, a role that may create the test database.
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
read -r pg_version pg_name <<<"$cluster"
pg_ctlcluster "$pg_version" "$pg_name" start 2>/dev/null || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='boatload'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE boatload LOGIN CREATEDB PASSWORD 'boatload'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='boatload'\"" | grep -q 1 \
  || su postgres -c "createdb -O boatload boatload"

# Docker engine.
bash "$here/docker/ensure-engine.sh"

# The test image: a root file system holding only a static busybox and its links.
image=${BOATLOAD_TEST_IMAGE:-boatload-test/busybox:latest}
if ! docker image inspect "$image" >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  for tool in $(/bin/busybox --list); do
    [ "$tool" = busybox ] || ln -sf busybox "$root/bin/$tool"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
  rm -rf "$root"
  echo "built $image"
fi
