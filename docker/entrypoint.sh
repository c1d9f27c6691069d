#!/bin/sh
# Role of this container: api (migrates first), satellite, reconcile, genisys, migrate, manage <command>.
set -e
role=${1:-api}
[ $# -gt 0 ] && shift
case "$role" in
  api)
    python manage.py migrate --noinput
    python manage.py ensure_admin
    python manage.py loadtemplates
    # gunicorn's workers share their Prometheus counters here (boatload/gunicorn_conf.py empties it)
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/boatload-prometheus}"
    exec gunicorn -c python:boatload.gunicorn_conf boatload.wsgi \
      --bind "${BOATLOAD_BIND:-0.0.0.0}:${BOATLOAD_PORT:-8000}" --access-logfile - "$@" ;;
  satellite) exec python -m satellite "$@" ;;
  reconcile) exec python manage.py reconcile "$@" ;;
  genisys) exec python manage.py genisys "$@" ;;
  migrate) exec python manage.py migrate --noinput "$@" ;;
  manage) exec python manage.py "$@" ;;
  *) exec "$role" "$@" ;;
esac
