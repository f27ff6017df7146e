"""Start and stop throwaway PostgreSQL and Redis servers (Debian's packages) for the production-path tests.

    python platform/services.py start DIR   prints `export DATABASE_URL=… CELERY_BROKER_URL=…`
    python platform/services.py stop DIR    stops both by their process ids

Both listen on loopback only, on free ports. PostgreSQL's initdb refuses to run as root, so the cluster is
made and run as the package's `postgres` user.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        sys.exit("PostgreSQL server binaries not found (apt-get install postgresql)")
    return Path(found[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start(root: Path) -> None:
    stop(root, quiet=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    pg_port, redis_port = _free_port(), _free_port()
    pg_dir = root / "postgres"
    pg_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(pg_dir, "postgres", "postgres")
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": sys.stderr}
    subprocess.run(
        _as_postgres(
            [str(_pg_bin() / "initdb"), "-D", str(pg_dir / "data"), "-U", "postgres", "-A", "trust", "--no-sync"]
        ),
        **run,
    )
    options = f"-p {pg_port} -k {pg_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                str(_pg_bin() / "pg_ctl"),
                "-D",
                str(pg_dir / "data"),
                "-w",
                "-l",
                str(pg_dir / "server.log"),
                "-o",
                options,
                "start",
            ]
        ),
        **run,
    )
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(root),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            str(root / "redis.pid"),
        ],
        **run,
    )
    deadline = time.monotonic() + 10
    while not (root / "redis.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"export DATABASE_URL=postgres://postgres@127.0.0.1:{pg_port}/loupe")
    print(f"export CELERY_BROKER_URL=redis://127.0.0.1:{redis_port}/0")


def stop(root: Path, quiet: bool = False) -> None:
    data = root / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres([str(_pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    pidfile = root / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)
        pidfile.unlink(missing_ok=True)
    if not quiet:
        print(f"stopped services under {root}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    (start if sys.argv[1] == "start" else stop)(Path(sys.argv[2]).resolve())
