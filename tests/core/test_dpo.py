"""DPO trains tiny text and vision models from Loupe preference files, reports, stops on request and resumes."""

import json
import math

import datasets
import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from training.core import load_preference_dataset
from training.methods.dpo import DPOConfig, train_dpo

STEP_METRICS = {
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "learning_rate",
    "grad_norm",
}


def changed_parameters(before: torch.nn.Module, after: torch.nn.Module) -> dict[str, bool]:
    after_params = dict(after.named_parameters())
    return {name: not torch.equal(p, after_params[name]) for name, p in before.named_parameters()}


def test_dpo_trains_the_tiny_lm(tiny_lm_dir, text_preference_file, tmp_path, recording_hooks):
    """Four DPO steps report finite metrics every step, change every weight tensor, evaluate on the eval
    file, and leave a model and tokenizer that load and generate."""
    hooks = recording_hooks()
    config = DPOConfig(max_steps=4, save_steps=2, eval_steps=2)
    result = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
        eval_path=text_preference_file,
        hooks=hooks,
    )
    assert result.steps == 4 and not result.stopped_early
    train_steps = [(step, metrics) for step, _, metrics in hooks.steps if "loss" in metrics]
    assert [step for step, _ in train_steps] == [1, 2, 3, 4]
    for _, metrics in train_steps:
        assert metrics.keys() >= STEP_METRICS
        assert all(math.isfinite(v) for v in metrics.values())
        assert 0 <= metrics["rewards/accuracies"] <= 1
    assert "tokens_per_second" in train_steps[-1][1]
    assert any("eval_loss" in metrics for _, _, metrics in hooks.steps)
    assert all(max_steps == 4 for _, max_steps, _ in hooks.steps)

    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    unchanged = [name for name, changed in changed_parameters(base, trained).items() if not changed]
    assert unchanged == []
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe the image."}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    assert trained.generate(**inputs, max_new_tokens=3, do_sample=False).shape[1] > inputs["input_ids"].shape[1]


def test_dpo_trains_the_tiny_vlm_on_images(tiny_vlm_dir, image_preference_file, tmp_path):
    """Two DPO steps on rows with images update the vision tower and projector too, and the saved model
    and processor load with the Auto classes."""
    result = train_dpo(
        config=DPOConfig(max_steps=2),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == 2 and math.isfinite(result.metrics["loss"])
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    changed = changed_parameters(base, trained)
    assert any(changed[name] for name in changed if "vision_tower" in name)
    assert all(changed[name] for name in changed if "multi_modal_projector" in name)
    processor = AutoProcessor.from_pretrained(result.output_dir)
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == trained.config.image_token_id


def test_stop_request_checkpoints_and_resume_finishes_like_an_uninterrupted_run(
    tiny_lm_dir, text_preference_file, tmp_path, recording_hooks
):
    """A stop requested after step 2 ends the run within one step with a checkpoint and no final model;
    resuming continues from that checkpoint (not from step 0) to the planned last step, and ends with
    the same weights as a run that was never stopped."""
    config = DPOConfig(max_steps=5, save_steps=100)
    out = tmp_path / "stopped"
    stopping = recording_hooks(stop_at_step=2)
    stopped = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=stopping,
    )
    assert stopped.stopped_early and stopped.steps in (2, 3)
    assert (out / "checkpoints" / f"checkpoint-{stopped.steps}").is_dir()
    assert not (out / "model.safetensors").exists()

    resuming = recording_hooks()
    resumed = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=resuming,
        resume=True,
    )
    assert resumed.steps == 5 and not resumed.stopped_early
    assert [step for step, _, _ in resuming.steps] == list(range(stopped.steps + 1, 6))
    assert any("resuming from" in line for line in resuming.lines)

    straight = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "straight",
    )
    resumed_model = AutoModelForCausalLM.from_pretrained(resumed.output_dir)
    straight_model = AutoModelForCausalLM.from_pretrained(straight.output_dir)
    for (name, a), b in zip(resumed_model.named_parameters(), straight_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_lora_run_saves_a_merged_model(tiny_lm_dir, text_preference_file, tmp_path):
    """With LoRA the saved model is a plain model (adapters merged) whose attention weights moved and whose
    other weights did not."""
    config = DPOConfig(max_steps=2, use_lora=True, lora_r=4, learning_rate=1e-2)
    result = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
    )
    assert not (result.output_dir / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    changed = changed_parameters(base, trained)
    assert any(changed[name] for name in changed if "v_proj" in name)
    assert not any(changed[name] for name in changed if "mlp" in name or "o_proj" in name)


def test_config_refuses_nonsense():
    """Impossible settings fail when the config is made, naming the field."""
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0)
    with pytest.raises(ValueError, match="max_steps"):
        DPOConfig(max_steps=0)
    with pytest.raises(ValueError, match="LoRA"):
        DPOConfig(use_lora=True, lora_target_modules=[])


def test_preference_file_formats_load_the_same_rows(shapes_items, image_preference_file, tmp_path):
    """JSONL with relative image paths, Parquet and a save_to_disk directory give the same rows, with
    images as PIL images."""
    from_jsonl = load_preference_dataset(image_preference_file)
    assert len(from_jsonl) == len(shapes_items[1])
    first = from_jsonl[0]
    assert isinstance(first["images"][0], Image.Image) and first["images"][0].size == (96, 96)

    from_jsonl.save_to_disk(str(tmp_path / "saved"))
    from_disk = load_preference_dataset(tmp_path / "saved")
    rows = [json.loads(line) for line in image_preference_file.read_text().splitlines()]
    datasets.Dataset.from_list(rows).to_parquet(str(image_preference_file.parent / "rows.parquet"))
    from_parquet = load_preference_dataset(image_preference_file.parent / "rows.parquet")
    for other in (from_disk, from_parquet):
        assert other["chosen"] == from_jsonl["chosen"] and other["prompt"] == from_jsonl["prompt"]
        assert other[3]["images"][0].tobytes() == from_jsonl[3]["images"][0].tobytes()


def test_bad_preference_line_names_its_line(tmp_path):
    """A line that is not JSON or lacks an answer fails the load with its line number."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n')
    with pytest.raises(ValueError, match="line 2.*rejected"):
        load_preference_dataset(path)
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        load_preference_dataset(path)


def test_dpo_learns_a_separable_preference(tiny_lm_dir, separable_preferences, tmp_path):
    """An answer that answers the question asked (a colour for "what colour", a shape for "what shape") beats
    one that does not: after 24 steps DPO's implicit reward ranks more than 90% of held-out pairs right, pairs
    whose sentences no training row holds, where ignoring the prompt ranks half right (at the start, policy =
    reference, it ranks none)."""
    train, heldout = separable_preferences
    result = train_dpo(
        config=DPOConfig(
            max_steps=24, learning_rate=1e-3, per_device_train_batch_size=8, save_steps=100, eval_steps=24
        ),
        train_path=train,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
        eval_path=heldout,
    )
    assert result.metrics["eval_rewards/accuracies"] > 0.9
    assert result.metrics["eval_rewards/margins"] > 0


def test_a_run_killed_while_saving_resumes_from_its_last_whole_checkpoint(
    tiny_lm_dir, text_preference_file, tmp_path, recording_hooks, monkeypatch
):
    """The run dies in the middle of saving checkpoint-4 (weights and optimizer written, not yet the random states
    and the trainer state), as a worker killed then would: a resume removes that half and continues from
    checkpoint-2 to the planned last step (CI once saw a resume pick the half-written folder and fail)."""
    import transformers

    class Killed(BaseException):
        pass

    save_rng_state = transformers.Trainer._save_rng_state

    def killed_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise Killed()
        return save_rng_state(self, output_dir)

    config = DPOConfig(max_steps=6, save_steps=2, save_total_limit=None)
    out = tmp_path / "run"
    monkeypatch.setattr(transformers.Trainer, "_save_rng_state", killed_at_step_4)
    with pytest.raises(Killed):
        train_dpo(config=config, train_path=text_preference_file, base_model=str(tiny_lm_dir), output_dir=out)
    monkeypatch.undo()
    half = out / "checkpoints" / "checkpoint-4"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()

    resuming = recording_hooks()
    resumed = train_dpo(
        config=config,
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=out,
        hooks=resuming,
        resume=True,
    )
    assert resumed.steps == 6 and not resumed.stopped_early
    assert [step for step, _, _ in resuming.steps] == [3, 4, 5, 6]
    assert "removed checkpoint-4: the run stopped while saving it" in resuming.lines
    assert any(line.startswith("resuming from") and line.endswith("checkpoint-2") for line in resuming.lines)
