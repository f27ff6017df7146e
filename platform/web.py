"""Loupe's web process: Granian (a Rust HTTP server) serving the Django WSGI app. The demo, the Procfile, the
systemd unit and the benches all start the web this way.

    python platform/web.py                          # 127.0.0.1:8000
    python platform/web.py --bind 0.0.0.0:8000

`WEB_CONCURRENCY` processes (default 2), each running `LOUPE_WEB_THREADS` Python threads (default 1 on SQLite,
4 on PostgreSQL) behind Granian's own I/O threads, which hold idle keep-alive connections and queue requests
without Python.
`LOUPE_ACCESS_LOG`: `-` for an access log on standard error, or a file's path. A worker that dies is started
again. SIGHUP restarts the workers gracefully; SIGTERM stops, killing after `LOUPE_WEB_GRACEFUL_SECONDS` (10) a
worker still busy.

Why not gunicorn (issue 15): gunicorn's threaded workers parse HTTP in Python and hand each request between
Python threads; for a small API request (a 401: 0.75 ms of CPU in Django itself) they added 1.0 ms of server
CPU, Granian 0.33 ms (`bench/web_server.py`, three interleaved rounds on a quiet machine; 0.7–1.7 ms when it
was loaded). On SQLite one Python thread per process is the
default because two cores gain nothing from more threads fighting for each process's interpreter lock: in
interleaved runs of `bench/annotation_throughput.py` (100k tasks, 4 annotators) p95 22–28 ms with one thread
against 35–42 ms with four. Request bodies are streamed to Django (an upload is never held whole in memory). Long
transfers hold a process's thread as with any threaded server: production sits behind a buffering proxy.
"""

import os
import sys
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        number = int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise SystemExit(f"{name} must be at least 1, not {number}")
    return number


def _default_threads() -> int:
    """Python threads per process unless LOUPE_WEB_THREADS says: 1 on SQLite, whose queries are all CPU in this
    process; 4 on PostgreSQL, where a request spends much of its time waiting on the server's round trips, with
    the interpreter lock free for another (10k tasks, 4 annotators: p95 43 ms with 4 threads, 58 ms with 1)."""
    postgres = ("postgres://", "postgresql://", "pgsql://", "postgis://")
    return 4 if os.environ.get("DATABASE_URL", "").startswith(postgres) else 1


def _logging(access_log: str) -> dict | None:
    """Granian's logging configuration with its access log sent to `access_log` (`-`: standard error), or
    None (Granian's default) without one. Granian merges only the top-level keys of what it is given."""
    if not access_log:
        return None
    import copy

    from granian.log import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"] = (
        {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        if access_log == "-"
        else {"formatter": "access", "class": "logging.FileHandler", "filename": access_log}
    )
    return config


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Loupe's web process (Granian + Django).")
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--bind needs host:port, not {args.bind!r}")

    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    access_log = os.environ.get("LOUPE_ACCESS_LOG", "")
    Granian(
        "loupe.wsgi:application",
        address=host,
        port=int(port),
        interface=Interfaces.WSGI,
        workers=_env_int("WEB_CONCURRENCY", 2),
        blocking_threads=_env_int("LOUPE_WEB_THREADS", _default_threads()),
        websockets=False,
        respawn_failed_workers=True,
        # A worker still busy this long after SIGTERM is killed. (One started again after a crash does not stop
        # on its own when asked: Granian 2.8.7; requests last milliseconds, so waiting longer gains nothing.)
        workers_kill_timeout=_env_int("LOUPE_WEB_GRACEFUL_SECONDS", 10),
        log_level=LogLevels.warning,
        log_access=bool(access_log),
        log_dictconfig=_logging(access_log),
        # The repository root, so `loupe.wsgi` imports however the script was started.
        working_dir=Path(__file__).resolve().parent.parent,
    ).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
