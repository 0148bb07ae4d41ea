#!/usr/bin/env bash
# Set up and run the whole test suite: Debian packages, the Python package, a throw-away
# PostgreSQL server (when one can be started here), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --with-postgres
pgdir=$(mktemp -d /tmp/fc-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if url=$(bash scripts/postgres.sh start "$pgdir" "$port" 2>"$pgdir/start.err"); then
  export FORECOURT_PG_URL="$url"
  trap 'bash scripts/postgres.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
  echo "test: PostgreSQL at $FORECOURT_PG_URL"
elif [ "${CI:-}" = true ]; then
  echo "test: CI needs PostgreSQL but it did not start:" >&2; cat "$pgdir/start.err" >&2; exit 1
else
  echo "test: no PostgreSQL server could be started ($(tail -n 1 "$pgdir/start.err")); PostgreSQL tests are skipped" >&2
fi
ruff check .
mypy  # the packages of pyproject.toml [tool.mypy]: zero errors
python3 -m pytest "$@"
