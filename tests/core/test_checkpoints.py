"""A resume continues from the newest complete checkpoint: one a kill left half written (its state file, written
last, missing or cut short) is passed over. Folders as transformers' Trainer and Loupe's PPO leave them."""

import json

from training.checkpoints import checkpoint_is_complete, discard_incomplete_checkpoints, last_complete_checkpoint


def _checkpoint(folder, step, *, state: str | None, state_file="trainer_state.json"):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / state_file).write_text(state)
    return path


def test_the_newest_checkpoint_whose_state_file_is_whole_is_the_one_resumed(tmp_path):
    whole = json.dumps({"global_step": 9, "log_history": []})
    _checkpoint(tmp_path, 5, state=whole)
    nine = _checkpoint(tmp_path, 9, state=whole)  # 9 < 10 as numbers, not as text
    _checkpoint(tmp_path, 10, state=None)  # killed before its state file
    _checkpoint(tmp_path, 11, state=whole[:20])  # killed while writing it
    (tmp_path / "checkpoint-12").write_text("a file, not a checkpoint")
    (tmp_path / "checkpoint-latest").mkdir()
    assert last_complete_checkpoint(tmp_path) == nine


def test_ppo_checkpoints_are_read_by_their_own_state_file(tmp_path):
    ppo = _checkpoint(tmp_path, 2, state=json.dumps({"step": 2, "kl_coef": 0.05}), state_file="ppo_state.json")
    assert checkpoint_is_complete(ppo)
    assert last_complete_checkpoint(tmp_path) == ppo


def test_no_checkpoint_folder_or_only_broken_ones_resume_nothing(tmp_path):
    assert last_complete_checkpoint(tmp_path / "absent") is None
    _checkpoint(tmp_path, 3, state="null")  # JSON, but not a state
    assert last_complete_checkpoint(tmp_path) is None


def test_discarding_removes_the_half_written_checkpoints_only(tmp_path):
    whole = json.dumps({"global_step": 4})
    _checkpoint(tmp_path, 4, state=whole)
    _checkpoint(tmp_path, 6, state=None)
    _checkpoint(tmp_path, 8, state="{")
    assert discard_incomplete_checkpoints(tmp_path) == ["checkpoint-8", "checkpoint-6"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-4"]


def test_a_trainer_state_cut_right_after_a_nested_object_is_not_whole(tmp_path):
    """The Trainer writes its state indented (json.dumps(indent=2) + newline); a cut can end on a nested entry's
    closing brace, which is not the end of the file's object."""
    state = json.dumps(
        {"global_step": 4, "log_history": [{"loss": 0.69, "step": 2}, {"loss": 0.6, "step": 4}]}, indent=2
    )
    state += "\n"
    nested_end = state.index("}") + 1  # the first log entry's closing brace
    assert checkpoint_is_complete(_checkpoint(tmp_path, 4, state=state))
    assert not checkpoint_is_complete(_checkpoint(tmp_path, 5, state=state[:nested_end] + "\n"))
    assert not checkpoint_is_complete(_checkpoint(tmp_path, 6, state=state[: state.rindex("}")]))
