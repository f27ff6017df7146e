"""The embedded Celery broker: kombu's filesystem transport with whole messages only.

kombu 5.7's filesystem transport creates a message's file under its final name and only then writes it, while a
worker polling the folder moves and reads any file with that name at once: a worker that polls in between reads an
empty message, fails to decode it and stops ("Unrecoverable error: JSONDecodeError") — the embedded default would
lose its worker under load. Here a message is written under a name the workers skip and renamed into place once
whole (a rename within one folder is atomic), and a message that cannot be decoded is logged and dropped instead
of stopping the worker (it would stop every worker that picked it up after a restart too). Names carry the clock
zero-padded, so that the order workers take messages in is the order they were sent in.

`loupe.celery` points the ``filesystem://`` scheme at this transport; nothing else changes (same folders, same
options, same URL).
"""

from __future__ import annotations

import logging
import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)

# kombu takes a file as a message of queue Q only when its name, after the first dot, is exactly "Q.msg".
PARTIAL_SUFFIX = ".part"
# Milliseconds of the monotonic clock, zero-padded so that name order is time order (15 digits: 31,000 years).
CLOCK_DIGITS = 15


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # Consumers take files in name order: kombu's unpadded milliseconds put "10000_…" before "9999_…" each
        # time the clock gains a digit, so newer messages would overtake (and under load starve) older ones.
        name = f"{int(round(monotonic() * 1000)):0{CLOCK_DIGITS}d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str) -> Any:
        try:
            return super()._get(queue)
        except ValueError as exc:  # json's JSONDecodeError and UnicodeDecodeError are ValueErrors
            logger.error("Dropped an unreadable message of queue %r from the broker folder: %s", queue, exc)
            raise Empty() from None


class Transport(filesystem.Transport):
    Channel = Channel
