"""Which checkpoint a resumed run continues from: the newest *complete* `checkpoint-N` folder.

A worker killed while it saves leaves a half-written `checkpoint-N` (CI saw one without its weights, and the
resume failed with "Can't find a valid checkpoint"). transformers' Trainer and Loupe's PPO both write their state
file last, after the weights, optimizer, scheduler and random states, so a checkpoint whose state file was
written to its end is whole. Plain Python without torch: the web process uses it to say what a resume would
continue from.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

TRAINER_STATE_FILE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME, the Trainer's last write
PPO_STATE_FILE = "ppo_state.json"  # Loupe's PPO loop's last write (training/methods/ppo.py)
STATE_FILES = (TRAINER_STATE_FILE, PPO_STATE_FILE)
_NUMBERED = re.compile(r"checkpoint-(\d+)")
DISCARDED_LINE = "removed {}: the run stopped while saving it"  # the run's log line for each one discarded


def numbered_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """The `checkpoint-N` folders of ``checkpoints_dir``, newest (highest N) first; [] when it does not exist."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.iterdir():
        match = _NUMBERED.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def checkpoint_is_complete(path: Path) -> bool:
    """True when the checkpoint's state file, written last, is there and whole.

    Read from its end only: the run page asks at every poll, and a long run's `trainer_state.json` holds every
    logged step (6 MB, ~40 ms to parse at 10,000 steps). A kill cuts a file short, so it is whole when it ends
    where its object closes: the Trainer writes it indented, its top-level brace alone on the last line; PPO on
    one line with nothing nested."""
    for name in STATE_FILES:
        try:
            with (path / name).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 4096))
                last_line = handle.read().rstrip().rsplit(b"\n", 1)[-1]
        except OSError:  # missing
            continue
        if last_line == b"}" or (last_line.startswith(b"{") and last_line.endswith(b"}")):
            return True
    return False


def last_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The checkpoint a resume continues from, or None when there is no complete one."""
    return next((path for path in numbered_checkpoints(checkpoints_dir) if checkpoint_is_complete(path)), None)


def discard_incomplete_checkpoints(checkpoints_dir: Path) -> list[str]:
    """Remove the checkpoints a kill left half written (a later save of the same step would mix into them, and
    the Trainer's rotation would count them); returns their names. Call it from one process only."""
    discarded = []
    for path in numbered_checkpoints(checkpoints_dir):
        if not checkpoint_is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            discarded.append(path.name)
    return discarded
