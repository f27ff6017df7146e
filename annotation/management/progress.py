"""Progress bars for management commands: one fed by the `progress(done, total)` callbacks services take, one
that follows a background job's row (`--wait`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import OutputWrapper

from annotation.models import JobStatus


class _Unterminated:
    """Writes through a command's OutputWrapper without the newline it adds to every write (tqdm redraws
    its line with carriage returns)."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


@contextmanager
def progress_bar(*, desc: str, unit: str, stream: OutputWrapper) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on `stream` (the command's stderr, so stdout keeps only the result); yields the callback."""
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit, file=_Unterminated(stream), mininterval=0.5) as bar:

        def update(done: int, total: int) -> None:
            if total and bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        yield update


def job_follow(*, desc: str, unit: str, read: Callable[[], tuple[str, int, int]], poll_seconds: float = 1.0) -> str:
    """Redraw a bar from a background job's row until the job leaves queued/running; returns its last status.

    `read()` gives the row's `(status, done, total)` as it is now (training runs, labeler jobs, ...)."""
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit) as bar:
        while True:
            status, done, total = read()
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(status)
            if status not in (JobStatus.QUEUED, JobStatus.RUNNING):  # training runs share these values
                return status
            time.sleep(poll_seconds)
