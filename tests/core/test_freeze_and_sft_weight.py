"""Two training settings the hallucination experiment needs, on the real trainers: `freeze_vision` keeps a VLM's
eyes as pre-trained (LLaVA's instruction tuning trains the language model on a frozen tower), and `sft_weight`
adds HA-DPO's language-model loss on the chosen answers to DPO's and DDPO's preference loss."""

import math

import pytest
import torch
from transformers import AutoModelForImageTextToText

from training.core import vision_parts_freeze
from training.methods.configs import DPOConfig, SFTConfig
from training.methods.ddpo import DDPOConfig, DDPOTrainer
from training.methods.dpo import make_preference_trainer, train_dpo
from training.methods.sft import train_sft


def changed(base: torch.nn.Module, trained: torch.nn.Module, part: str) -> list[bool]:
    before = dict(base.named_parameters())
    return [not torch.equal(before[name], p) for name, p in trained.named_parameters() if part in name]


@pytest.mark.parametrize(
    ("what", "frozen_parts"),
    [("none", set()), ("tower", {"vision_tower"}), ("tower_and_projector", {"vision_tower", "multi_modal_projector"})],
)
def test_freeze_vision_stops_exactly_the_parts_named(tiny_vlm_dir, what, frozen_parts):
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    frozen = vision_parts_freeze(model, what)
    for part in ("vision_tower", "multi_modal_projector", "language_model", "lm_head"):
        params = [p for name, p in model.named_parameters() if part in name]
        assert params and all(p.requires_grad == (part not in frozen_parts) for p in params), part
    expected = sum(p.numel() for n, p in model.named_parameters() if any(part in n for part in frozen_parts))
    assert frozen == expected


def test_an_sft_run_with_frozen_vision_trains_the_language_model_only(tiny_vlm_dir, image_preference_file, tmp_path):
    result = train_sft(
        config=SFTConfig(max_steps=2, freeze_vision="tower_and_projector"),
        train_path=image_preference_file, base_model=str(tiny_vlm_dir), output_dir=tmp_path / "out",
    )  # fmt: skip
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    assert not any(changed(base, trained, "vision_tower")) and not any(changed(base, trained, "multi_modal_projector"))
    assert any(changed(base, trained, "language_model"))


def test_a_dpo_run_with_the_tower_frozen_still_trains_the_projector(tiny_vlm_dir, image_preference_file, tmp_path):
    result = train_dpo(
        config=DPOConfig(max_steps=2, freeze_vision="tower"),
        train_path=image_preference_file, base_model=str(tiny_vlm_dir), output_dir=tmp_path / "out",
    )  # fmt: skip
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    assert not any(changed(base, trained, "vision_tower")) and all(changed(base, trained, "multi_modal_projector"))


@pytest.mark.parametrize("method", ["dpo", "ddpo"])
def test_sft_weight_adds_the_chosen_answers_nll_to_the_preference_loss(
    method, tiny_lm_dir, spans_preference_file, tmp_path
):
    """Before training (policy = reference) the preference loss is ln 2; with sft_weight w the loss is
    ln 2 + w x the mean token NLL of the chosen answers (about ln 512 for the random tiny LM)."""
    from trl import DPOTrainer

    losses = {}
    for weight in (0.0, 1.0, 2.0):
        config = (DDPOConfig if method == "ddpo" else DPOConfig)(per_device_train_batch_size=4, sft_weight=weight)
        extra = {"gamma": 5.0, "sft_weight": weight} if method == "ddpo" else {}
        trainer = make_preference_trainer(
            trainer_class=DDPOTrainer if method == "ddpo" else DPOTrainer, config=config,
            train_path=spans_preference_file, base_model=str(tiny_lm_dir), output_dir=tmp_path / str(weight),
            eval_path=None, **extra,
        )  # fmt: skip
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            losses[weight] = trainer.compute_loss(trainer.model, batch).item()
    assert abs(losses[0.0] - math.log(2)) < 1e-5
    nll = losses[1.0] - losses[0.0]
    assert 3.0 < nll < 9.0  # a random model over a 512-token vocabulary: about ln 512 = 6.2 per token
    assert abs((losses[2.0] - losses[0.0]) - 2 * nll) < 1e-3


def test_bad_values_of_the_new_settings_are_refused_with_their_names():
    with pytest.raises(ValueError, match="freeze_vision must be one of none, tower, tower_and_projector"):
        SFTConfig(freeze_vision="eyes")
    with pytest.raises(ValueError, match="sft_weight cannot be negative"):
        DDPOConfig(sft_weight=-1.0)
