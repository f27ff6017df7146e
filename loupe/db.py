"""Database expressions every app's background jobs share."""

import threading

from django.conf import settings
from django.db import connection
from django.db.models import F, QuerySet, TextField, Value
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
    nothing. Set `stopped` to end it."""

    def __init__(self, rows: QuerySet) -> None:
        super().__init__(daemon=True)
        self.rows, self.stopped = rows, threading.Event()
        self.every = max(0.2, min(10.0, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS / 4))

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                self.rows.update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection
