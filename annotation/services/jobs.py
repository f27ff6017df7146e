"""Data jobs: large imports and exports run by a Celery worker, with progress, a log, cancellation and a
result to download (design.md §5: every long step records its progress on its row and is safe to run twice).

`data_job_export_start` and `data_job_import_start` create a `DataJob` and queue it once the transaction
commits; the worker calls `data_job_execute`, which claims the job (a second delivery finds it taken and
does nothing), runs the export or import and records the outcome. An export's result is the zip of the
export folder (`result_path`, downloadable when the job succeeded) and its manifest (`result`); an
import's result is its report.

Progress: an import stores its rows in one transaction (nothing is kept if it fails), and on SQLite that
transaction holds the only write lock, so while it runs neither its progress nor a cancel request can go
through the database. Both therefore also travel as small files in the job's folder: the worker writes
`progress.json` (read by `data_job_progress`), and `data_job_cancel` leaves a `cancel` file the worker
checks at every batch. For the same reason the worker's heartbeat is a file too (`heartbeat`, touched by a
thread while the job works, however long one step takes): a running job whose row, note and heartbeat file are
all older than `LOUPE_HEARTBEAT_TIMEOUT_SECONDS` belongs to a dead worker, and is reaped whenever jobs are read
(the embedded broker never delivers a dead worker's task again, and a worker restarted within the timeout
cannot tell).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import DataJob, DatasetSnapshot, JobKind, JobStatus, Project
from annotation.services.exports import export_options_check, snapshot_export_archive
from annotation.services.imports import import_format_check, items_import
from loupe.db import log_appended
from loupe.errors import ApplicationError
from loupe.failures import FAILURE_PREFIX, failure_log

PROGRESS_FILE = "progress.json"
CANCEL_FILE = "cancel"
HEARTBEAT_FILE = "heartbeat"
# Progress is written at most this often (seconds): a job of a million rows must not spend its time on it.
PROGRESS_EVERY = 0.5


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was asked for; the job's work is rolled back."""


def jobs_dir() -> Path:
    return Path(getattr(settings, "LOUPE_JOBS_DIR", Path(settings.DATA_DIR) / "jobs"))


def job_dir(job: DataJob) -> Path:
    return jobs_dir() / f"job-{job.pk}"


def _enqueue(job: DataJob) -> None:
    from annotation.tasks import data_job_execute_task

    # A folder left by an earlier job of the same id (a database restored, or ids reused after a rollback)
    # must not hand this job its cancel or progress notes.
    _cleanup_leftovers(job)
    transaction.on_commit(lambda: data_job_execute_task.delay(job.pk))


# ---------------------------------------------------------------------------------------------------
# Starting


@transaction.atomic
def data_job_export_start(
    *,
    snapshot: DatasetSnapshot,
    export_format: str,
    options: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> DataJob:
    """Queue an export of `snapshot`; a bad format or option is refused before anything is queued."""
    options = export_options_check(snapshot=snapshot, export_format=export_format, options=options)
    job = DataJob.objects.create(
        kind=JobKind.EXPORT,
        project=snapshot.project,
        snapshot=snapshot,
        params={"format": export_format, "options": options},
        total=snapshot.n_rows,
        created_by=created_by,
    )
    _enqueue(job)
    return job


@transaction.atomic
def data_job_import_start(
    *,
    project: Project,
    source: Path,
    import_format: str,
    images: Path | None = None,
    image: Path | None = None,
    created_by: AbstractBaseUser | None = None,
    file_name: str | None = None,
) -> DataJob:
    """Queue an import of the file `source`. The file (and `images`, `image`) is moved into the job's
    folder, so the caller's copy may be temporary; a format unknown or unfit for the project's kind is
    refused before anything is queued. `file_name` is the name the user knows the file by (an upload's),
    shown in job lists; by default the name of `source`."""
    import_format_check(project=project, import_format=import_format)
    job = DataJob.objects.create(
        kind=JobKind.IMPORT, project=project, params={"format": import_format}, created_by=created_by
    )
    _cleanup_leftovers(job)
    folder = job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    # Only the last part of an upload's name, and not all of a pathological one.
    shown_name = Path(str(file_name).replace("\\", "/")).name[:200] if file_name else ""
    params: dict[str, Any] = {"format": import_format, "file_name": shown_name or Path(source).name}
    for key, path in (("source", source), ("images", images), ("image", image)):
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            # A folder of images stays where it is (the CLI's case); uploads are always files.
            params[key] = str(path.resolve())
            continue
        target = folder / f"{key}-{path.name}"
        shutil.move(str(path), target)
        params[key] = str(target)
    job.params = params
    job.save(update_fields=["params"])
    _enqueue(job)
    return job


# ---------------------------------------------------------------------------------------------------
# Running


class _Progress:
    """Records a running job's progress (throttled) and stops it when its cancellation was asked for."""

    def __init__(self, job: DataJob) -> None:
        self.job_id = job.pk
        self.folder = job_dir(job)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._last = 0.0

    def cancelled(self) -> bool:
        return (self.folder / CANCEL_FILE).exists()

    def __call__(self, done: int, total: int) -> None:
        if self.cancelled():
            raise JobCancelled
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY and done < total:
            return
        self._last = now
        connection = transaction.get_connection()
        if connection.in_atomic_block:
            # Inside the import's transaction: the row would only change at commit (and on SQLite another
            # connection could not write it), so the numbers go to a file beside the job.
            _write_json(self.folder / PROGRESS_FILE, {"done": done, "total": total, "at": time.time()})
        else:
            DataJob.objects.filter(pk=self.job_id).update(done=done, total=total, heartbeat_at=timezone.now())


class _FolderHeartbeat(threading.Thread):
    """Touches the job's heartbeat file several times per heartbeat timeout until `stopped` is set. A file, not
    the row (`loupe.db.Heartbeat`): while an import's transaction holds SQLite's write lock, no other
    connection can write the row."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stopped = folder / HEARTBEAT_FILE, threading.Event()
        self.every = max(0.2, min(10.0, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS / 4))

    def beat(self) -> None:
        with contextlib.suppress(OSError):  # the folder was removed: the job has ended
            self.path.touch()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.beat()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(data, handle)
    os.replace(handle.name, path)


def _run_export(job: DataJob, progress: _Progress) -> tuple[str, dict[str, Any]]:
    archive = snapshot_export_archive(
        snapshot=job.snapshot,
        export_format=job.params["format"],
        options=job.params.get("options") or {},
        progress=progress,
    )
    with zipfile.ZipFile(archive) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
    return str(archive), {"manifest": manifest, "bytes": archive.stat().st_size}


def _run_import(job: DataJob, progress: _Progress) -> tuple[str, dict[str, Any]]:
    params = job.params
    source = Path(params["source"])
    report = items_import(
        project=job.project,
        path=source,
        images=Path(params["images"]) if params.get("images") else source.parent,
        import_format=params["format"],
        image=Path(params["image"]) if params.get("image") else None,
        # The file was moved to `source-<name>`; the name it came with names a caption-contest table.
        file_name=params.get("file_name"),
        progress=progress,
    )
    return "", report.as_dict()


def _run_beating(job: DataJob, progress: _Progress) -> tuple[str, dict[str, Any]]:
    """Run the export or import while a thread beats for it."""
    heartbeat = _FolderHeartbeat(progress.folder)
    heartbeat.beat()
    heartbeat.start()
    try:
        return (_run_export if job.kind == JobKind.EXPORT else _run_import)(job, progress)
    finally:
        heartbeat.stopped.set()
        heartbeat.join()


def data_job_execute(*, job_id: int) -> None:
    """Run a queued job to its end in this process (a Celery worker). Safe to deliver twice."""
    claimed = DataJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return  # Taken by another delivery, cancelled before it started, or finished.
    job = DataJob.objects.select_related("project", "snapshot").get(pk=job_id)
    progress = _Progress(job)
    DataJob.objects.filter(pk=job_id).update(log=log_appended(f"[loupe] {job.kind} {_describe(job)} started\n"))
    started = time.monotonic()
    try:
        result_path, result = _run_beating(job, progress)
    except JobCancelled:
        DataJob.objects.filter(pk=job_id).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            log=log_appended("[loupe] cancelled; nothing kept\n"),
        )
        _cleanup(job)
        return
    except ApplicationError as error:
        _fail(job_id, f"{FAILURE_PREFIX}{error.message} {json.dumps(error.extra) if error.extra else ''}\n")
        _cleanup(job)
        return
    except BaseException as error:
        _fail(job_id, failure_log(error))  # the traceback for staff, then the cause in one line
        _cleanup(job)
        raise
    seconds = time.monotonic() - started
    done = result.get("manifest", {}).get("counts", {}).get("rows") if job.kind == JobKind.EXPORT else None
    if done is None:
        done = result.get("created", 0) + result.get("unchanged", 0) if job.kind == JobKind.IMPORT else job.total
    DataJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED,
        done=done,
        total=max(done, job.total),
        result=result,
        result_path=result_path,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        log=log_appended(f"[loupe] succeeded in {seconds:.1f} s: {json.dumps(_summary(result))}\n"),
    )
    _cleanup(job)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return result["manifest"].get("counts", {}) if "manifest" in result else result


def _describe(job: DataJob) -> str:
    if job.kind == JobKind.EXPORT:
        return f"of snapshot {job.snapshot_id} as {job.params.get('format')}"
    return f"of {job.params.get('file_name', 'a file')} ({job.params.get('format')}) into {job.project.slug}"


def _fail(job_id: int, text: str) -> None:
    DataJob.objects.filter(pk=job_id).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), log=log_appended(text)
    )


def _cleanup_leftovers(job: DataJob) -> None:
    folder = job_dir(job)
    if folder.exists() and not any(str(folder) in str(v) for v in job.params.values()):
        shutil.rmtree(folder, ignore_errors=True)


def _cleanup(job: DataJob) -> None:
    # The uploaded files and progress notes are not needed once the job is over; results live elsewhere.
    shutil.rmtree(job_dir(job), ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Watching, cancelling, reaping


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int
    heartbeat_at: datetime | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def data_job_progress(*, job: DataJob) -> JobProgress:
    """The job's progress: its row, or the worker's newer note while an import holds its transaction; its
    heartbeat is the latest of the row's, the note's and the heartbeat file's."""
    done, total, beat = job.done, job.total, job.heartbeat_at
    if job.status == JobStatus.RUNNING:
        try:
            note = json.loads((job_dir(job) / PROGRESS_FILE).read_text())
        except (OSError, ValueError):
            note = None
        if note is not None:
            noted_at = datetime.fromtimestamp(note["at"], tz=timezone.get_current_timezone())
            if beat is None or noted_at > beat:
                done, total, beat = int(note["done"]), int(note["total"]), noted_at
        try:
            touched_at = datetime.fromtimestamp(
                (job_dir(job) / HEARTBEAT_FILE).stat().st_mtime, tz=timezone.get_current_timezone()
            )
        except OSError:
            touched_at = None
        if touched_at is not None and (beat is None or touched_at > beat):
            beat = touched_at
    return JobProgress(done=done, total=total, heartbeat_at=beat)


def data_job_cancel(*, job: DataJob) -> DataJob:
    """Queued jobs end at once; running ones stop at their next batch and keep nothing; a job whose worker
    died ends as cancelled now (its heartbeat stopped) or when the reaper finds it (within the timeout)."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise ApplicationError(f"A {job.status} job cannot be cancelled.", {"job": job.pk})
    folder = job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CANCEL_FILE).touch()
    ended = DataJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED,
        finished_at=timezone.now(),
        log=log_appended("[loupe] cancelled before it started\n"),
    )
    if ended:
        _cleanup(job)
    else:
        _reap_if_dead(job)
    job.refresh_from_db()
    return job


def data_jobs_reap_dead() -> int:
    """End running jobs whose worker stopped beating (it died); returns how many. A job whose cancel was asked
    for ends cancelled, any other failed. Called when a worker starts and whenever jobs are read."""
    return sum(_reap_if_dead(job) for job in DataJob.objects.filter(status=JobStatus.RUNNING))


def _reap_if_dead(job: DataJob) -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    beat = data_job_progress(job=job).heartbeat_at
    if beat is not None and beat >= cutoff:
        return 0
    since = f" since {beat:%Y-%m-%d %H:%M:%S}" if beat else ""
    if (job_dir(job) / CANCEL_FILE).exists():
        status, text = (
            JobStatus.CANCELLED,
            f"[loupe] cancelled; the worker had stopped (no heartbeat{since}); nothing kept\n",
        )
    else:
        status = JobStatus.FAILED
        text = (
            f"[loupe] no heartbeat{since}: the worker died; nothing of an import was kept, start it again\n"
            f"{FAILURE_PREFIX}the worker stopped (no heartbeat); start the {job.kind} again\n"
        )
    reaped = DataJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), log=log_appended(text)
    )
    if reaped:
        _cleanup(job)
    return reaped


def data_job_download_name(*, job: DataJob) -> str:
    """The name a finished export downloads under (the datasets page and the API alike): what the zip holds,
    project, snapshot, format and split, not the file's hash."""
    options = job.params.get("options") or {}
    split = options.get("split") or "all"
    suffix = "" if split == "all" else f"-{split}"
    return f"{job.project.slug}-snapshot-{job.snapshot_id}-{job.params['format']}{suffix}.zip"


def data_job_result_file(*, job: DataJob) -> Path:
    """The finished export's zip, or ApplicationError saying why there is none yet."""
    if job.kind != JobKind.EXPORT:
        raise ApplicationError("Only export jobs have a file to download.", {"job": job.pk})
    if job.status != JobStatus.SUCCEEDED:
        raise ApplicationError(f"The export is {job.status}; download it once it has succeeded.", {"job": job.pk})
    path = Path(job.result_path)
    if not path.is_file():
        raise ApplicationError("The export's file is gone; start the export again.", {"job": job.pk})
    return path
