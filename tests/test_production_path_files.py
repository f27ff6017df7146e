"""Issue 16, "Production path": platform/Procfile and platform/systemd/ run the web with platform/web.py (its
settings in one place) and a Celery worker for every queue the code routes a task to, so no task of any kind
waits forever for a worker nobody started."""

import configparser
import shlex
from pathlib import Path

import pytest

PLATFORM = Path(__file__).resolve().parent.parent / "platform"


def _procfile() -> dict[str, list[str]]:
    processes = {}
    for line in (PLATFORM / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = shlex.split(command)
    return processes


def _units() -> dict[str, configparser.ConfigParser]:
    units = {}
    for path in sorted((PLATFORM / "systemd").iterdir()):
        unit = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
        unit.optionxform = str  # keys are case-sensitive in systemd
        unit.read_string(path.read_text())
        units[path.name] = unit
    return units


def _worker_queues(argv: list[str]) -> set[str]:
    if "celery" not in Path(argv[0]).name or "worker" not in argv:
        return set()
    assert argv[argv.index("-A") + 1] == "loupe", argv
    return set(argv[argv.index("-Q") + 1].split(","))


def _routed_queues() -> dict[str, str]:
    """Every Loupe task's name → the queue Celery routes it to (CELERY_TASK_ROUTES, else the default queue)."""
    from loupe.celery import app

    app.loader.import_default_modules()
    return {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks if not name.startswith("celery.")}


@pytest.fixture(scope="module")
def routed():
    queues = _routed_queues()
    # The tasks of every kind are found (a broken autodiscovery would make this test pass vacuously).
    assert {
        "annotation.data_job_execute",
        "training.run_execute",
        "labeler.job_execute",
        "benchmark.run_execute",
    } <= set(queues)
    return queues


def test_the_procfile_runs_a_worker_for_every_queue_tasks_are_routed_to(routed):
    processes = _procfile()
    served = set().union(*(_worker_queues(argv) for argv in processes.values()))
    missing = {name: queue for name, queue in routed.items() if queue not in served}
    assert not missing, f"tasks routed to queues no Procfile worker consumes: {missing}"
    assert served >= {"default", "labeler", "training", "benchmark"}
    web = processes["web"]
    assert web[:2] == ["python", "platform/web.py"] and "--bind" in web
    assert "migrate" in processes["release"]


def test_the_systemd_units_run_a_worker_for_every_queue_and_the_target_wants_them(routed):
    units = _units()
    target = units["loupe.target"]
    wanted = set(target["Unit"]["Wants"].split())
    served = set()
    for name, unit in units.items():
        if not name.endswith(".service"):
            continue
        service = unit["Service"]
        assert service["EnvironmentFile"] == "/etc/loupe/loupe.env", name
        assert service["WorkingDirectory"] == "/opt/loupe", name
        argv = shlex.split(service["ExecStart"])
        queues = _worker_queues(argv)
        if queues:
            assert name in wanted, f"{name} is not started by loupe.target"
            assert service.get("Restart") == "on-failure", name
            # Several workers on one machine need distinct node names; %H is systemd's host name.
            assert argv[argv.index("-n") + 1].endswith("@%H"), name
            served |= queues
    missing = {name: queue for name, queue in routed.items() if queue not in served}
    assert not missing, f"tasks routed to queues no systemd worker consumes: {missing}"
    web = shlex.split(units["loupe-web.service"]["Service"]["ExecStart"])
    assert Path(web[0]).name == "python" and web[1] == "platform/web.py" and "--bind" in web
    assert "loupe-web.service" in wanted
    assert all(unit in units for unit in wanted), wanted - set(units)
    assert "loupe-migrate.service" in units["loupe-web.service"]["Unit"]["Requires"]


def test_the_readme_documents_the_production_path():
    readme = (PLATFORM.parent / "README.md").read_text()
    section = readme[readme.index("## Running it for real") :]
    for needed in ("platform/Procfile", "platform/systemd", "DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY"):
        assert needed in section, needed
