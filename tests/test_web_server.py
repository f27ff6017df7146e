"""The web process as the README, the Procfile and systemd start it (`python platform/web.py`): it serves the
API over keep-alive connections, starts a killed worker again, stops on SIGTERM, and refuses bad settings
with a message instead of a traceback."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from measure import free_port  # noqa: E402 — bench/ holds the one helper for it


def _environment(tmp_path, **extra: str) -> dict:
    return {
        **os.environ,
        "LOUPE_DATA_DIR": str(tmp_path),
        "LOUPE_DEMO": "1",  # a throwaway data folder: the demo's generated secret key
        "DJANGO_SETTINGS_MODULE": "loupe.settings.base",
        **extra,
    }


def _workers(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(p) for p in found)


def _get(port: int, connection: http.client.HTTPConnection | None = None):
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/v1/projects/")
    reply = connection.getresponse()
    return connection, reply.status, {name.lower(): value for name, value in reply.getheaders()}, reply.read()


def _wait_answering(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the web process exited with {process.returncode}"
        try:
            _get(port)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the web process did not answer in time")


@pytest.fixture
def web(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "platform/web.py", "--bind", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=_environment(
            tmp_path,
            WEB_CONCURRENCY="2",
            LOUPE_ACCESS_LOG=str(tmp_path / "access.log"),
            LOUPE_WEB_GRACEFUL_SECONDS="2",
        ),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "web.log").open("w"),
        start_new_session=True,
    )
    try:
        _wait_answering(port, process)
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_web_process_serves_the_api_and_starts_a_killed_worker_again(web, tmp_path):
    port, process = web
    connection, status, headers, body = _get(port)
    assert status == 401 and json.loads(body)["message"]  # the API, through every middleware
    assert "content-security-policy" in headers
    for _ in range(3):  # one keep-alive connection serves request after request
        connection, status, _, _ = _get(port, connection)
        assert status == 401
    assert "GET /api/v1/projects/" in (tmp_path / "access.log").read_text()

    workers = _workers(process.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(_workers(process.pid)) < 2 or workers[0] in _workers(process.pid)):
        time.sleep(0.2)
    assert len(_workers(process.pid)) == 2 and workers[0] not in _workers(process.pid)
    # The new worker is a process before it listens: the server may refuse a connection for a moment meanwhile.
    _wait_answering(port, process, timeout=30)
    for _ in range(4):  # both workers answer (new connections spread over them)
        assert _get(port)[1] == 401

    connection.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0  # within LOUPE_WEB_GRACEFUL_SECONDS of the request


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("WEB_CONCURRENCY", "two", "WEB_CONCURRENCY must be a whole number"), ("LOUPE_WEB_THREADS", "0", "at least 1")],
)
def test_bad_web_settings_are_refused_with_a_message(tmp_path, variable, value, message):
    result = subprocess.run(
        [sys.executable, "platform/web.py", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=REPO,
        env=_environment(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
