"""What the web server itself costs per request (issue 15): server CPU per request for the same small API
request (`GET /api/v1/projects/` without credentials: a 401 through every middleware, DRF and the exception
handler, no database) served by Django alone in this process, by `platform/web.py` (Granian), and by
gunicorn's threaded workers where gunicorn is installed (it is not in Loupe's requirements any more; `pip
install gunicorn==27.0.1` to include it). One client on one keep-alive connection, the servers one after the
other in one run, `--rounds` times interleaved. Prints one JSON line per (server, round), then a summary with
the median per server and each server's overhead over Django alone.

    .venv/bin/python bench/web_server.py
    .venv/bin/python bench/web_server.py --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import (  # bench/ is the script's folder on sys.path
    cpu_seconds,
    free_port,
    stop_process_group,
    wait_answering,
)

REPO = Path(__file__).resolve().parent.parent
PATH = "/api/v1/projects/"

GUNICORN_CONFIG = """
workers = 2
threads = 4
worker_class = "gthread"
worker_tmp_dir = "/dev/shm"
"""


def _environment(data_dir: Path) -> dict:
    return {
        **os.environ,
        "LOUPE_DATA_DIR": str(data_dir),
        "LOUPE_DEMO": "1",
        "LOUPE_LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "loupe.settings.base",
        "PYTHONPATH": str(REPO),
    }


def _in_process(data_dir: Path, seconds: float) -> dict:
    """Django's own cost: the WSGI app called directly, in a child process (a clean interpreter)."""
    code = f"""
import io, json, sys, time
from loupe.wsgi import application
environ = {{"REQUEST_METHOD": "GET", "PATH_INFO": {PATH!r}, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "8000", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8000",
           "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1"}}
def call():
    b"".join(application({{**environ, "wsgi.input": io.BytesIO(b"")}}, lambda status, headers, exc=None: None))
for _ in range(300):
    call()
started, cpu, n = time.monotonic(), time.process_time(), 0
while time.monotonic() - started < {seconds}:
    call(); n += 1
print(json.dumps({{"requests": n, "cpu": time.process_time() - cpu, "wall": time.monotonic() - started}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=_environment(data_dir), capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "requests": result["requests"],
        "server_cpu_ms": round(result["cpu"] / result["requests"] * 1000, 3),
        "wall_ms": round(result["wall"] / result["requests"] * 1000, 3),
    }


def _over_http(command: list[str], data_dir: Path, seconds: float) -> dict:
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=_environment(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_answering(port, process, path=PATH)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(300):  # warm both workers' code paths
            connection.request("GET", PATH)
            connection.getresponse().read()
        cpu, started, n = cpu_seconds(process.pid), time.monotonic(), 0
        while time.monotonic() - started < seconds:
            connection.request("GET", PATH)
            reply = connection.getresponse()
            reply.read()
            n += 1
        cpu, wall = cpu_seconds(process.pid) - cpu, time.monotonic() - started
        assert reply.status == 401, reply.status
        return {"requests": n, "server_cpu_ms": round(cpu / n * 1000, 3), "wall_ms": round(wall / n * 1000, 3)}
    finally:
        stop_process_group(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="loupe-bench-web-"))
    (data_dir / "gunicorn.conf.py").write_text(GUNICORN_CONFIG)
    servers = {"granian (platform/web.py)": [sys.executable, "platform/web.py", "--bind", "127.0.0.1:{port}"]}
    if importlib.util.find_spec("gunicorn"):
        servers["gunicorn gthread 2x4"] = [
            *(sys.executable, "-m", "gunicorn", "loupe.wsgi"),
            *("-c", str(data_dir / "gunicorn.conf.py"), "-b", "127.0.0.1:{port}"),
        ]
    results: dict[str, list[float]] = {"django in process": []}
    for name in servers:
        results[name] = []
    for round_ in range(1, args.rounds + 1):
        line = {"round": round_, "server": "django in process", **_in_process(data_dir, args.seconds)}
        results["django in process"].append(line["server_cpu_ms"])
        print(json.dumps(line), flush=True)
        for name, command in servers.items():
            line = {"round": round_, "server": name, **_over_http(command, data_dir, args.seconds)}
            results[name].append(line["server_cpu_ms"])
            print(json.dumps(line), flush=True)
    django = statistics.median(results["django in process"])
    print(
        json.dumps(
            {
                "event": "summary",
                "request": f"GET {PATH} (401)",
                "median_server_cpu_ms": {name: statistics.median(values) for name, values in results.items()},
                "server_overhead_cpu_ms": {
                    name: round(statistics.median(values) - django, 3)
                    for name, values in results.items()
                    if name != "django in process"
                },
                "gunicorn_measured": "gunicorn gthread 2x4" in results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
