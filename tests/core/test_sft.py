"""SFT learns the preferred answers of a snapshot's pairs, with SciCap control tokens when asked, on text and
vision models, and can train on a prompt/completion file instead."""

import json
import math

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from training.core import render_text
from training.generation import answer_prefix_of, encode_prompts, load_policy
from training.methods.sft import SFTConfig, load_sft_rows, sft_rows_from_preferences, train_sft


def rows(*pairs: tuple[str, str]) -> datasets.Dataset:
    return datasets.Dataset.from_list([{"prompt": "Describe.", "chosen": c, "rejected": r} for c, r in pairs])


def test_answers_are_good_or_bad_by_their_wins_and_losses():
    """An answer chosen more often than rejected is good, the reverse bad, a tie is dropped; without control
    tokens only good answers are kept."""
    pairs = rows(("A", "B"), ("A", "C"), ("C", "B"), ("B", "D"))  # A: +2, B: -1, C: 0, D: -1
    plain = sft_rows_from_preferences(pairs, control_tokens=False, good_token="[GOOD]", bad_token="[BAD]")
    assert [r["completion"] for r in plain] == ["A"]
    tagged = sft_rows_from_preferences(pairs, control_tokens=True, good_token="[GOOD]", bad_token="[BAD]")
    assert sorted(r["completion"] for r in tagged) == ["[BAD] B", "[BAD] D", "[GOOD] A"]


def test_sft_trains_the_tiny_lm_with_control_tokens(tiny_lm_dir, text_preference_file, tmp_path, recording_hooks):
    """Four steps with control tokens report finite losses, lower the loss on the training answers, change the
    weights, and leave a model whose folder asks generation to start answers with [GOOD]."""
    hooks = recording_hooks()
    config = SFTConfig(max_steps=4, control_tokens=True, learning_rate=2e-3, per_device_train_batch_size=4)
    result = train_sft(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "sft",
        eval_path=text_preference_file,
        hooks=hooks,
    )
    assert result.steps == 4
    losses = [metrics["loss"] for _, _, metrics in hooks.steps if "loss" in metrics]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    evals = [metrics["eval_loss"] for _, _, metrics in hooks.steps if "eval_loss" in metrics]
    assert evals and evals[-1] < losses[0]
    assert answer_prefix_of(result.output_dir) == "[GOOD] "

    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert not torch.equal(base.lm_head.weight, trained.lm_head.weight)
    model, processing_class = load_policy(result.output_dir)
    batch = encode_prompts(
        processing_class, prompts=["Describe the image."], images=None, use_template=True, answer_prefix="[GOOD] "
    )
    text = processing_class.decode(batch.inputs["input_ids"][0])
    assert text.endswith("<|assistant|>[GOOD]")  # the space is the answer's first token's, as in training


@pytest.mark.parametrize("prefix_source", ["config", "saved folder"])
def test_the_generation_prompt_is_a_token_prefix_of_the_control_token_training_text(
    prefix_source, tiny_lm_dir, tmp_path
):
    """What generation feeds a control-token model (prompt + good token) tokenizes exactly as the start of a
    training answer after that token: "[GOOD] A" is "]", " A" in training, so the prompt must not end on a
    lone space token the model never saw there."""
    config = SFTConfig(control_tokens=True)
    prefix = config.answer_prefix
    if prefix_source == "saved folder":
        rows = tmp_path / "rows.jsonl"
        rows.write_text(json.dumps({"prompt": "Caption this.", "completion": "[GOOD] A red circle."}) + "\n")
        result = train_sft(
            config=SFTConfig(max_steps=1), train_path=rows, base_model=str(tiny_lm_dir), output_dir=tmp_path / "m"
        )
        prefix = answer_prefix_of(result.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    prompt = "What is in the image?"
    for answer in ("A red circle on the left.", "There are two objects."):
        trained = render_text(tokenizer, prompt=prompt, answer=f"{prefix}{answer}", with_image=False, use_template=True)
        trained_ids = tokenizer(trained, add_special_tokens=False)["input_ids"]
        batch = encode_prompts(tokenizer, prompts=[prompt], images=None, use_template=True, answer_prefix=prefix)
        prompt_ids = batch.inputs["input_ids"][0].tolist()
        assert trained_ids[: len(prompt_ids)] == prompt_ids
        assert tokenizer.decode(trained_ids[len(prompt_ids)]).startswith(" ")  # the answer's first word


def test_sft_trains_the_tiny_vlm_on_images(tiny_vlm_dir, image_preference_file, tmp_path):
    """Two SFT steps on rows with images move the vision tower and projector too."""
    result = train_sft(
        config=SFTConfig(max_steps=2),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vsft",
    )
    assert result.steps == 2 and math.isfinite(result.metrics["loss"])
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    after = dict(trained.named_parameters())
    moved = {name for name, p in base.named_parameters() if not torch.equal(p, after[name])}
    assert any("vision_tower" in name for name in moved)
    assert any("multi_modal_projector" in name for name in moved)


def test_sft_reads_a_prompt_completion_file(tiny_lm_dir, text_preference_file, tmp_path):
    """With sft_data the run trains on that file's rows; a line without a completion names its line."""
    data = tmp_path / "best.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"Question {i}?", "completion": "There is a red circle."}) + "\n" for i in range(4)
        )
    )
    result = train_sft(
        config=SFTConfig(max_steps=2, sft_data=str(data)),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == 2
    data.write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "p"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_sft_rows(data)


def test_sft_config_refuses_identical_control_tokens_and_missing_files(tmp_path):
    """Control tokens must differ, and an sft_data file must exist, when the config is made."""
    with pytest.raises(ValueError, match="differ"):
        SFTConfig(control_tokens=True, good_token="[X]", bad_token="[X]")
    with pytest.raises(ValueError, match="does not exist"):
        SFTConfig(sft_data=str(tmp_path / "missing.jsonl"))


def test_an_sft_snapshot_with_rated_control_tokens_trains_as_it_is(tiny_lm_dir, tmp_path):
    """Prompt/completion rows whose rated answers already carry [GOOD]/[BAD] (an sft snapshot) are trained on
    unchanged, and the model is told to answer after [GOOD]."""
    rows = tmp_path / "train.jsonl"
    rows.write_text(
        json.dumps({"prompt": "Caption this.", "completion": "[GOOD] A red circle on the left."})
        + "\n"
        + json.dumps({"prompt": "Caption this.", "completion": "[BAD] A blue star in the centre."})
        + "\n"
    )
    result = train_sft(
        config=SFTConfig(max_steps=1), train_path=rows, base_model=str(tiny_lm_dir), output_dir=tmp_path / "out"
    )
    assert result.steps == 1 and answer_prefix_of(result.output_dir) == "[GOOD] "
