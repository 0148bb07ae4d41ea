#!/usr/bin/env bash
# Install what Forecourt HIL needs: Debian packages (as root, if missing) and the Python package.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
command -v socat >/dev/null 2>&1 || need+=(socat)
if [ "${1:-}" = "--with-postgres" ] && ! command -v initdb >/dev/null 2>&1 \
   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages (needs root): ${need[*]}" >&2
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
