#!/usr/bin/env bash
# The whole suite on real PostgreSQL: the machine's server when one answers on 127.0.0.1:5432, else
# the embedded one (winnow/embedded_db.py, data under var/). Tests marked `vector` need the
# pgvector extension: when the server in use lacks it, they run in a pass of their own on the
# embedded server (PostgreSQL 18 with vector), before the rest. Extra arguments go to pytest. An
# embedded server this script starts is stopped when it ends; one already running is left running.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if "$PY" winnow/embedded_db.py url >/dev/null 2>&1; then embedded_was_running=1; else embedded_was_running=""; fi
stop_embedded() {
  if [ -z "$embedded_was_running" ] && "$PY" winnow/embedded_db.py url >/dev/null 2>&1; then
    "$PY" winnow/embedded_db.py stop >/dev/null 2>&1
  fi
}
trap stop_embedded EXIT

embedded_url() { "$PY" winnow/embedded_db.py start 2>/dev/null; }
has_vector() {  # exit 0 when the server of DATABASE_URL $1 offers the vector extension
  "$PY" - "$1" <<'PYEOF'
import sys

import dj_database_url
import psycopg2

db = dj_database_url.parse(sys.argv[1])
params = {"dbname": "postgres", "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"] or None,
          "port": db["PORT"] or None, **db.get("OPTIONS", {})}
with psycopg2.connect(**{k: v for k, v in params.items() if v not in (None, "")}) as conn, conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    sys.exit(0 if cur.fetchone() else 1)
PYEOF
}

if [ -z "${DATABASE_URL:-}" ]; then
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/winnow
    echo "tests: the machine's PostgreSQL on 127.0.0.1:5432"
  else
    DATABASE_URL=$(embedded_url) || { echo "tests: the embedded PostgreSQL did not start" >&2; exit 1; }
    export DATABASE_URL
    echo "tests: the embedded PostgreSQL 18 under var/postgres (nothing answers on 127.0.0.1:5432)"
  fi
fi

if has_vector "$DATABASE_URL"; then
  .venv/bin/pytest "$@"
  exit $?
fi

vector_tests=$(.venv/bin/pytest -q --collect-only -m vector -p no:cacheprovider "$@" 2>/dev/null | grep -c '::')
if [ "$vector_tests" -gt 0 ]; then
  echo "tests: this PostgreSQL has no pgvector; the $vector_tests tests marked 'vector' run on the embedded PostgreSQL 18 first"
  DATABASE_URL=$(embedded_url) .venv/bin/pytest -m vector -p no:cacheprovider "$@"
  first=$?
else
  first=0
fi
.venv/bin/pytest -m "not vector" "$@"
second=$?
exit $(( first > second ? first : second ))
