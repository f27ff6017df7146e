"""Database expressions every app's background jobs share."""

import threading

from django.conf import settings
from django.db import connection
from django.db.models import F, Model, QuerySet, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone


def log_appended(text: str) -> Concat:
    """A job row's `log` with `text` appended, computed in the database so concurrent writers never lose a line
    (`F("log") + text` would add numbers on SQLite). Use as `Model.objects.filter(...).update(log=log_appended(t))`."""
    return Concat(F("log"), Value(text), output_field=TextField())


class Heartbeat(threading.Thread):
    """Stamps `heartbeat_at` on a running job's row several times per heartbeat timeout while the job works, so
    a long step (a training step, a slow batch) is not taken for a dead worker. `rows` selects the job's row
    while it is running (`Model.objects.filter(pk=..., status=RUNNING)`): once it is not, the beats change
    nothing. `stop()` ends it and waits for a beat in flight, so none lands after the job's last write."""

    def __init__(self, rows: QuerySet) -> None:
        super().__init__(daemon=True)
        self.rows, self.stopped = rows, threading.Event()
        self.every = max(0.2, min(10.0, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS / 4))

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                self.rows.update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection


def run_cancel(model: type[Model], pk: int) -> Model:
    """Cancel a training or benchmark run (call inside a transaction): a queued one ends at once; a running one is
    asked to stop at its next step or batch (`cancel_requested`); an ended one cannot be cancelled."""
    from loupe.errors import ApplicationError

    run = model.objects.select_for_update().get(pk=pk)
    if run.status == "queued":
        run.status = "cancelled"
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    elif run.status == "running":
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
    else:
        raise ApplicationError(f"A {run.status} run cannot be cancelled.")
    return run
