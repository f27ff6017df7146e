"""Issue 16, item 8: a failed job shows users the cause in one line, without the Python traceback or the server's
folders; the traceback stays in the job's log for staff (the admin shows it). One helper (loupe.failures) for
training runs, data jobs, labeler jobs, benchmark runs and recipe runs."""

import pytest

from annotation import services
from annotation.models import DataJob, JobStatus, LabelerJob
from annotation.services import jobs
from loupe.failures import FAILURE_PREFIX, failure_cause, failure_log, log_for_users, paths_hidden

SECRET_FOLDER = "/srv/loupe-private/var/jobs/job-7"


def _raised(error):
    try:
        raise error
    except Exception as caught:  # noqa: BLE001
        return caught


def _chained():
    try:
        try:
            open(f"{SECRET_FOLDER}/source-items.jsonl")  # noqa: SIM115
        except OSError as missing:
            raise RuntimeError(f"could not read\n{SECRET_FOLDER}/x") from missing
    except RuntimeError as error:
        return error


def test_the_cause_is_one_line_naming_the_error_without_server_folders():
    error = _raised(FileNotFoundError(2, "No such file or directory", f"{SECRET_FOLDER}/source-items.jsonl"))
    cause = failure_cause(error)
    assert cause == "FileNotFoundError: [Errno 2] No such file or directory: 'source-items.jsonl'"
    assert failure_cause(_raised(ValueError("bad\nsecond line"))) == "ValueError: bad"
    assert failure_cause(_raised(KeyError())) == "KeyError"
    assert len(failure_cause(_raised(ValueError("x" * 5000)))) == 300


def test_paths_become_file_names_but_urls_and_short_names_stay():
    assert paths_hidden("read /a/b/c.png and /etc/") == "read c.png and /etc/"
    url = "https://images.example.org/cats/1.png"
    assert paths_hidden(f"fetching {url} failed") == f"fetching {url} failed"
    assert paths_hidden("/m has no config.json") == "/m has no config.json"  # a name users gave, one part
    assert paths_hidden("a ratio 3/4 of 1/2/3") == "a ratio 3/4 of 1/2/3"


def test_users_read_the_log_without_tracebacks_staff_keep_them():
    error = _chained()
    log = "[loupe] import of items.jsonl started\n" + failure_log(error) + "[loupe] something after\n"
    assert log.count("Traceback (most recent call last):") == 2 and SECRET_FOLDER in log  # all of it for staff
    shown = log_for_users(log)
    assert shown == (
        "[loupe] import of items.jsonl started\n"
        f"{FAILURE_PREFIX}RuntimeError: could not read\n"
        "[loupe] something after\n"
    )
    # A log written before the cause line existed: the exception's own line stands in for it.
    older = (
        f'[loupe] started\nTraceback (most recent call last):\n  File "{SECRET_FOLDER}/a.py", line 1\n'
        f"ValueError: bad {SECRET_FOLDER}/b.txt\n"
    )
    assert log_for_users(older) == "[loupe] started\n[loupe] failed: ValueError: bad b.txt\n"


@pytest.mark.django_db
def test_a_data_job_that_crashes_shows_managers_the_cause_and_keeps_the_traceback(
    pairwise_project, researcher, api_client_for, tmp_path, monkeypatch, client
):
    source = tmp_path / "items.jsonl"
    source.write_text("{}\n")
    job = services.data_job_import_start(project=pairwise_project, source=source, import_format="loupe-jsonl")

    def crash(job, progress):
        raise OSError(f"disk full writing {SECRET_FOLDER}/images/cat.png")

    monkeypatch.setattr(jobs, "_run_import", crash)
    with pytest.raises(OSError):
        services.data_job_execute(job_id=job.pk)
    stored = DataJob.objects.get(pk=job.pk)
    assert stored.status == JobStatus.FAILED and "Traceback" in stored.log and SECRET_FOLDER in stored.log

    body = api_client_for(researcher).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["log"].splitlines()[-1] == "[loupe] failed: OSError: disk full writing cat.png"
    assert "Traceback" not in body["log"] and "/srv" not in body["log"]
    client.force_login(researcher)
    page = client.get(f"/projects/{pairwise_project.slug}/datasets/").content.decode()
    assert "OSError: disk full writing cat.png" in page and "Traceback" not in page and "/srv" not in page


@pytest.mark.django_db
def test_a_labeler_job_that_crashes_shows_managers_the_cause(
    pairwise_project, researcher, api_client_for, monkeypatch, client
):
    from annotation.services import labeler

    job = LabelerJob.objects.create(project=pairwise_project, backend="local", model="m")

    def crash(job):
        raise ValueError(f"tokenizer missing in {SECRET_FOLDER}/models/m")

    monkeypatch.setattr(labeler, "_run", crash)
    with pytest.raises(ValueError):
        labeler.labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "Traceback" in job.log
    body = api_client_for(researcher).get(f"/api/v1/labeler-jobs/{job.pk}/").json()
    assert body["log"].splitlines()[-1] == "[loupe] failed: ValueError: tokenizer missing in m"
    assert "Traceback" not in body["log"] and "/srv" not in body["log"]
    client.force_login(researcher)
    page = client.get(f"/projects/{pairwise_project.slug}/labeler/").content.decode()
    assert "ValueError: tokenizer missing in m" in page and "Traceback" not in page and "/srv" not in page


@pytest.mark.django_db
def test_a_benchmark_run_that_crashes_has_a_one_line_error(monkeypatch):
    from evaluation import services as evaluation_services
    from evaluation.models import BenchmarkRun

    run = BenchmarkRun.objects.create(benchmark="pope", config={})

    def crash(run):
        raise RuntimeError(f"CUDA out of memory\nwhile loading {SECRET_FOLDER}/w.bin")

    monkeypatch.setattr(evaluation_services, "_outcome", crash)
    evaluation_services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.error == "RuntimeError: CUDA out of memory"
    assert "Traceback" in run.log and run.log.endswith(f"{FAILURE_PREFIX}RuntimeError: CUDA out of memory\n")
