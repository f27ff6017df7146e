"""A progress bar for management commands, fed by the `progress(done, total)` callbacks services take."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import OutputWrapper


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
