"""The settings of every training method, as dataclasses whose fields carry help text.

They live apart from the methods' trainers because the web process validates a run's config before it
queues it, and the web process never imports torch, transformers or trl: this module imports none of them
at module level (the ``trl_args`` / ``lora_config`` builders import them when a worker calls them). Each
method module re-exports its config (``from training.methods.dpo import DPOConfig``).

Defaults suit the tiny test models (a few steps move them); the help text says what real models want.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loupe.jsonchecks import dataclass_types_check

if TYPE_CHECKING:
    from trl import DPOConfig as TrlDPOConfig

FREEZE_VISION_CHOICES = ("none", "tower", "tower_and_projector")
GOOD_TOKEN = "[GOOD]"  # noqa: S105 - SciCap's control token, not a secret
BAD_TOKEN = "[BAD]"  # noqa: S105 - SciCap's control token, not a secret


def _positive(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive, not {getattr(config, name)}")


def _at_least_one(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, not {getattr(config, name)}")


def _has_cuda_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, asked without importing torch where it is not loaded yet (the
    web process validates configs and never imports it): the driver's files tell."""
    if "torch" in sys.modules:
        return sys.modules["torch"].cuda.is_available()
    return Path("/proc/driver/nvidia/version").is_file() or shutil.which("nvidia-smi") is not None


def qlora_unavailable_reason() -> str | None:
    """Why QLoRA cannot run here (bitsandbytes' 4-bit kernels need the package and a CUDA GPU), or None.

    The web process checks it when a run is created, the worker again before it trains; a web server on a
    machine without the GPU workers' setup therefore refuses QLoRA runs too."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return (
            "use_qlora loads the base model in 4 bits through bitsandbytes, which is not installed here "
            "(pip install bitsandbytes on a CUDA machine); turn use_qlora off to train plain LoRA adapters"
        )
    if not _has_cuda_gpu():
        return (
            "use_qlora needs a CUDA GPU for bitsandbytes' 4-bit kernels and this machine has none; turn "
            "use_qlora off to train plain LoRA adapters"
        )
    return None


# --------------------------------------------------------------------------------------------------------------
# What every trainer-based method shares


@dataclass
class TrainingConfig:
    """Optimizer, schedule, checkpoint, logging and LoRA settings every training method shares."""

    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate. 1e-4 moves a tiny model; 5e-7 to 5e-6 is usual for real models."},
    )
    max_steps: int = field(default=20, metadata={"help": "Number of optimizer steps."})
    per_device_train_batch_size: int = field(default=2, metadata={"help": "Examples per device per forward pass."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    max_length: int | None = field(
        default=512,
        metadata={
            "help": "Longest prompt + answer in text tokens; longer ones are cut at the end. A vision-language "
            "model's image tokens come on top, counted from its processor (LLaVA-1.5: 576 per image), so an "
            "image is never cut. None: no limit."
        },
    )
    lr_scheduler_type: str = field(
        default="linear",
        metadata={"help": "Learning-rate schedule (transformers names: linear, cosine, constant, ...)."},
    )
    warmup_steps: int = field(default=0, metadata={"help": "Steps of linear learning-rate warm-up."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, sampling, dropout and LoRA initialisation."})
    save_steps: int = field(default=10, metadata={"help": "Write a resumable checkpoint every this many steps."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (oldest deleted). None keeps all."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Report metrics every this many steps."})
    eval_steps: int | None = field(
        default=None,
        metadata={"help": "Evaluate on the snapshot's test split every this many steps; None: at every checkpoint."},
    )
    apply_chat_template: bool = field(
        default=True,
        metadata={
            "help": "Render plain-text rows as a user turn and an assistant turn with the model's chat template. "
            "Turn off for base models without one. Rows with images are always rendered this way, since the "
            "template is where the image placeholder goes."
        },
    )
    freeze_vision: str = field(
        default="none",
        metadata={
            "help": "A vision-language model's parts kept as they are: 'none' trains everything, 'tower' the "
            "projector and the language model (LLaVA-1.5's instruction tuning), 'tower_and_projector' the "
            "language model alone. Ignored for text models and with LoRA (only the adapters train)."
        },
    )
    gradient_checkpointing: bool = field(
        default=True,
        metadata={"help": "Recompute activations to save GPU memory. Always off on CPU, where it only costs."},
    )
    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters (peft) instead of all weights."},
    )
    use_qlora: bool = field(
        default=False,
        metadata={
            "help": "QLoRA (Dettmers et al., 2023): load the base model in 4-bit NF4 (bitsandbytes, bf16 compute) "
            "and train LoRA adapters on it, so a 7B model fits one 24 GB GPU. Needs use_lora, bitsandbytes and "
            "a CUDA GPU; refused otherwise."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (HA-DPO uses 64 on 7B models)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj"],
        metadata={"help": "Module names that get adapters (HA-DPO: the attention q/k/v projections)."},
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "With LoRA, merge the adapters into the saved model (a plain full model). Off: save the "
            "adapter alone, to merge later with the merge step."
        },
    )

    def __post_init__(self) -> None:
        dataclass_types_check(self)
        _positive(self, "learning_rate")
        _at_least_one(self, "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps")
        _at_least_one(self, "save_steps", "logging_steps")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps must be at least 1 or None, not {self.eval_steps}")
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens or None, not {self.max_length}")
        if self.freeze_vision not in FREEZE_VISION_CHOICES:
            raise ValueError(
                f"freeze_vision must be one of {', '.join(FREEZE_VISION_CHOICES)}, not {self.freeze_vision!r}"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps cannot be negative, not {self.warmup_steps}")
        if not isinstance(self.lora_target_modules, list) or not all(
            isinstance(m, str) for m in self.lora_target_modules
        ):
            raise ValueError("lora_target_modules must be a list of module names")
        if self.use_lora and (self.lora_r < 1 or self.lora_alpha <= 0 or not self.lora_target_modules):
            raise ValueError("LoRA needs lora_r >= 1, lora_alpha > 0 and at least one target module")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if self.use_qlora and not self.use_lora:
            raise ValueError("use_qlora trains LoRA adapters on a 4-bit base: turn use_lora on too")
        if self.use_qlora and (reason := qlora_unavailable_reason()):
            raise ValueError(reason)

    def model_init_kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments for the model a run trains: fp32 master weights whatever
        dtype the checkpoint was saved in (``training.core.TRAINING_DTYPE``; bf16 comes from autocast on a
        GPU), plus the 4-bit quantization with ``use_qlora``. trl's trainers take them as ``model_init_kwargs``."""
        from training.core import TRAINING_DTYPE

        kwargs: dict[str, Any] = {"dtype": TRAINING_DTYPE}
        if self.use_qlora:
            import torch
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        return kwargs

    def sequence_max_length(self, *, image_tokens: int = 0) -> int | None:
        """The token limit a trainer applies: ``max_length`` text tokens plus a row's ``image_tokens``."""
        return None if self.max_length is None else self.max_length + image_tokens

    def trainer_arguments(self, *, output_dir: Path, with_eval: bool) -> dict[str, Any]:
        """Keyword arguments any ``transformers.TrainingArguments`` subclass takes for this run: checkpoints
        under ``output_dir/checkpoints``, bf16 and gradient checkpointing only on CUDA, no external loggers."""
        import torch

        from training.core import CHECKPOINTS_DIR, cuda_bf16

        on_cuda = torch.cuda.is_available()
        return {
            "output_dir": str(Path(output_dir) / CHECKPOINTS_DIR),
            "learning_rate": self.learning_rate,
            "max_steps": self.max_steps,
            "per_device_train_batch_size": self.per_device_train_batch_size,
            "per_device_eval_batch_size": self.per_device_train_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "lr_scheduler_type": self.lr_scheduler_type,
            "warmup_steps": self.warmup_steps,
            "seed": self.seed,
            "save_strategy": "steps",
            "save_steps": self.save_steps,
            "save_total_limit": self.save_total_limit,
            "logging_strategy": "steps",
            "logging_steps": self.logging_steps,
            "eval_strategy": "steps" if with_eval else "no",
            "eval_steps": (self.eval_steps or self.save_steps) if with_eval else None,
            "bf16": cuda_bf16(),
            "fp16": False,
            # transformers 5.23 renamed it; the old name still works but warns (and goes in v6).
            "activation_checkpointing": self.gradient_checkpointing and on_cuda,
            "report_to": "none",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "dataloader_pin_memory": on_cuda,
        }

    def lora_config(self, *, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
        """A peft ``LoraConfig`` when ``use_lora`` is on, else None."""
        if not self.use_lora:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.lora_target_modules),
            task_type=task_type,
            modules_to_save=modules_to_save,
        )


# --------------------------------------------------------------------------------------------------------------
# Where a reward comes from (PPO, GRPO, RLOO, best-of-N)


# `reward_function: "labeler:<model folder or hub name>"`: the AI labeler's answer score (training.rewards).
LABELER_REWARD_PREFIX = "labeler:"


def _reward_functions_from_environment() -> Mapping[str, str]:
    from loupe.env import env_dict

    return env_dict("LOUPE_REWARD_FUNCTIONS", {})


# Where the registry of reward functions comes from: the Django app points it at the admin's setting
# LOUPE_REWARD_FUNCTIONS (`training.apps`); plain-Python processes (e.g. a launcher's children without
# Django) read the same environment variable the setting comes from. Nothing else is ever importable.
_reward_function_registry: Callable[[], Mapping[str, str]] = _reward_functions_from_environment


def reward_function_registry_use(registry: Callable[[], Mapping[str, str]]) -> None:
    """Read the registered reward functions (name -> "package.module:function") from `registry` from now on."""
    global _reward_function_registry  # noqa: PLW0603 - one registry per process, set once at start-up
    _reward_function_registry = registry


def registered_reward_function(reward_function: str) -> str | None:
    """The "package.module:function" a config's `reward_function` stands for: a registered name, or exactly
    one of the registered values; None for anything else. Imports nothing."""
    registry = dict(_reward_function_registry())
    value = reward_function.strip()
    if value in registry:
        return registry[value]
    return value if value in registry.values() else None


def check_reward_source(reward_model: str, reward_function: str) -> None:
    """Exactly one reward source: a reward model (hub name or folder), the AI labeler, or a registered
    reward function.

    A folder that does not exist and a function nobody registered are refused here, before a run is
    queued, without importing anything (the web process validates configs; a config must never make it
    import, let alone run, a module). Whether the model loads is only known in the worker.
    """
    if bool(reward_model.strip()) == bool(reward_function.strip()):
        raise ValueError(
            "set exactly one of reward_model (a reward model's hub name or folder, e.g. a reward run's "
            "artifact) and reward_function (a registered reward function, or 'labeler:<model>')"
        )
    if reward_model.strip():
        path = Path(reward_model)
        if (path.is_absolute() or reward_model.startswith(".")) and not path.is_dir():
            raise ValueError(f"reward_model folder {reward_model} does not exist")
    elif reward_function.strip().startswith(LABELER_REWARD_PREFIX):
        model = reward_function.strip().removeprefix(LABELER_REWARD_PREFIX).strip()
        if not model:
            raise ValueError("reward_function 'labeler:' needs the labeler model's folder or hub name after it")
        if (Path(model).is_absolute() or model.startswith(".")) and not Path(model).is_dir():
            raise ValueError(f"the labeler model folder {model} does not exist")
    elif registered_reward_function(reward_function) is None:
        names = ", ".join(sorted(_reward_function_registry())) or "none"
        raise ValueError(
            f"reward_function {reward_function.strip()[:100]!r} cannot be found among the registered reward "
            f"functions ({names}); an admin registers one in the LOUPE_REWARD_FUNCTIONS setting, or use "
            "'labeler:<model>' or a reward_model"
        )


REWARD_MODEL_HELP = (
    "Reward model to score answers: a hub name or local folder (a reward run's artifact location works). "
    "Leave empty when reward_function is set."
)
REWARD_FUNCTION_HELP = (
    "Instead of a reward model, a scorer registered by the admin (LOUPE_REWARD_FUNCTIONS: its name, or its "
    "'package.module:function'), called as f(prompts=[...], completions=[...], images=[...] or None) -> list "
    "of floats; or 'labeler:<model folder>' "
    "for the AI labeler's score (minus its rejected claims) with that model run locally."
)


# --------------------------------------------------------------------------------------------------------------
# Offline methods


@dataclass
class DPOConfig(TrainingConfig):
    """Settings of a DPO run. Defaults suit the tiny test models; real models want a smaller learning rate."""

    beta: float = field(
        default=0.1,
        metadata={"help": "Strength of the pull towards the reference model (DPO's beta); higher stays closer."},
    )
    sft_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of a language-model loss on the chosen answers added to the preference loss (HA-DPO's "
            "auxiliary SFT term; RPO). 0: the preference loss alone. Without it a small model can lower both "
            "answers' likelihood and drift to answers neither side holds (likelihood displacement)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "beta")
        if self.sft_weight < 0:
            raise ValueError(f"sft_weight cannot be negative, not {self.sft_weight}")

    def trl_args(self, *, output_dir: Path, with_eval: bool, image_tokens: int = 0) -> TrlDPOConfig:
        """trl's DPO config for this run (see ``TrainingConfig.trainer_arguments``); ``image_tokens``: the most
        image tokens a row holds, added to ``max_length``."""
        from trl import DPOConfig as TrlDPOConfig

        return TrlDPOConfig(
            **self.trainer_arguments(output_dir=output_dir, with_eval=with_eval),
            model_init_kwargs=self.model_init_kwargs(),
            beta=self.beta,
            **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, self.sft_weight]} if self.sft_weight else {}),
            max_length=self.sequence_max_length(image_tokens=image_tokens),
            prediction_loss_only=True,  # evaluation needs the loss and metrics, never the full logits
        )


@dataclass
class DDPOConfig(DPOConfig):
    """Settings of a DDPO run: DPO's, with the paper's beta, plus the weight of changed tokens and how a
    sequence's weighted token log-probs are reduced. The defaults are the paper's (mean, beta 0.5, gamma 5):
    its formula is what Loupe documents, and a mean keeps beta's scale the same for short and long answers.
    RLHF-V's released run is normalize "sum", beta 0.1, gamma 1.1."""

    beta: float = field(
        default=0.5,
        metadata={
            "help": "DPO's beta. RLHF-V's paper uses 0.5 (with normalize 'mean'); its released training run uses "
            "0.1 (with normalize 'sum')."
        },
    )
    gamma: float = field(
        default=5.0,
        metadata={
            "help": "Weight of changed (corrected) tokens relative to unchanged ones. RLHF-V's paper uses 5 (with "
            "normalize 'mean'); its released training run uses 1.1 (with normalize 'sum'). 1 gives DPO on mean "
            "token log-probabilities ('mean') or plain DPO ('sum')."
        },
    )
    normalize: str = field(
        default="mean",
        metadata={
            "help": "How a sequence's gamma-weighted token log-probs are reduced: 'mean' divides their sum by the "
            "sum of the weights (RLHF-V's paper: beta 0.5, gamma 5); 'sum' keeps the sum (RLHF-V's released run, "
            "dpo_use_average=False: beta 0.1, gamma 1.1), so long answers weigh more."
        },
    )
    min_match_tokens: int = field(
        default=3,
        metadata={"help": "Shortest run of equal tokens that counts as unchanged in the chosen/rejected diff."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "gamma")
        _at_least_one(self, "min_match_tokens")
        if self.normalize not in ("mean", "sum"):
            raise ValueError(f"normalize must be 'mean' or 'sum', not {self.normalize!r}")


@dataclass
class SFTConfig(TrainingConfig):
    """Settings of a supervised fine-tuning run on the snapshot's answers (or a prompt/completion file)."""

    learning_rate: float = field(
        default=5e-4,
        metadata={"help": "Peak learning rate. 5e-4 moves a tiny model; 1e-5 to 2e-5 is usual for real models."},
    )
    control_tokens: bool = field(
        default=False,
        metadata={
            "help": "SciCap-style feedback control tokens: train on the preferred answers prefixed with the good "
            "token and on the rejected ones prefixed with the bad token; at generation the good token is "
            "prepended. Off: train on the preferred answers only."
        },
    )
    good_token: str = field(default=GOOD_TOKEN, metadata={"help": "Prefix of preferred answers (control tokens)."})
    bad_token: str = field(default=BAD_TOKEN, metadata={"help": "Prefix of rejected answers (control tokens)."})
    sft_data: str = field(
        default="",
        metadata={
            "help": "A JSONL file of prompt/completion rows (e.g. a best-of-N run's best.jsonl) to train on "
            "instead of the snapshot's pairs. Empty: use the snapshot."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.control_tokens and (not self.good_token.strip() or not self.bad_token.strip()):
            raise ValueError("control tokens need a non-empty good_token and bad_token")
        if self.control_tokens and self.good_token.strip() == self.bad_token.strip():
            raise ValueError("good_token and bad_token must differ")
        if self.sft_data.strip() and not Path(self.sft_data).is_file():
            raise ValueError(f"sft_data file {self.sft_data} does not exist")

    @property
    def answer_prefix(self) -> str:
        """What generation prepends to every answer of a model trained with this config."""
        return f"{self.good_token} " if self.control_tokens else ""

    def trl_args(self, *, output_dir: Path, with_eval: bool, image_tokens: int = 0):
        """trl's SFT config for this run; ``image_tokens`` as for ``DPOConfig.trl_args``."""
        from trl import SFTConfig as TrlSFTConfig

        return TrlSFTConfig(
            **self.trainer_arguments(output_dir=output_dir, with_eval=with_eval),
            model_init_kwargs=self.model_init_kwargs(),
            max_length=self.sequence_max_length(image_tokens=image_tokens),
            completion_only_loss=True,  # learn the answers, not the prompts
            prediction_loss_only=True,
        )


@dataclass
class RewardConfig(TrainingConfig):
    """Settings of a Bradley-Terry reward model run on chosen/rejected pairs (a scalar head on the base)."""

    learning_rate: float = field(
        default=1e-3,
        metadata={"help": "Peak learning rate. 1e-3 moves a tiny model; 1e-5 is usual for real models."},
    )
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Preference pairs per forward pass."})
    center_rewards_coefficient: float = field(
        default=0.0,
        metadata={
            "help": "Weight of a penalty on the squared mean reward, keeping scores centred near 0 "
            "(Eisenstein et al. use 0.01). 0: off."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.center_rewards_coefficient < 0:
            raise ValueError(f"center_rewards_coefficient cannot be negative, not {self.center_rewards_coefficient}")

    def trl_args(self, *, output_dir: Path, with_eval: bool):
        from transformers import TrainingArguments

        return TrainingArguments(
            **self.trainer_arguments(output_dir=output_dir, with_eval=with_eval),
            remove_unused_columns=False,  # the collator needs the raw prompt, answers and images
            prediction_loss_only=True,
        )


# --------------------------------------------------------------------------------------------------------------
# Online methods: the model writes answers and a reward scores them


@dataclass
class OnlineConfig(TrainingConfig):
    """What PPO, GRPO and RLOO share: a reward source and how answers are sampled."""

    reward_model: str = field(default="", metadata={"help": REWARD_MODEL_HELP})
    reward_function: str = field(default="", metadata={"help": REWARD_FUNCTION_HELP})
    max_completion_length: int = field(default=16, metadata={"help": "Longest sampled answer, in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the answers."})
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate. 1e-4 moves a tiny model; about 1e-6 is usual for real models."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reward_source(self.reward_model, self.reward_function)
        _at_least_one(self, "max_completion_length")
        _positive(self, "temperature")


@dataclass
class PPOConfig(OnlineConfig):
    """Settings of Loupe's PPO: clipped policy objective, a value head, GAE and an adaptive KL penalty."""

    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Prompts sampled per PPO step (one answer each)."}
    )
    mini_batch_size: int = field(default=2, metadata={"help": "Answers per gradient step inside a PPO step's epochs."})
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each step's answers."})
    cliprange: float = field(default=0.2, metadata={"help": "Clip range of the policy ratio (PPO's epsilon)."})
    cliprange_value: float = field(default=0.2, metadata={"help": "Clip range of the value update."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    gamma: float = field(default=1.0, metadata={"help": "Discount of future rewards per token."})
    lam: float = field(default=0.95, metadata={"help": "GAE's lambda."})
    init_kl_coef: float = field(
        default=0.05, metadata={"help": "Starting weight of the per-token KL penalty to the reference model."}
    )
    adaptive_kl: bool = field(
        default=True,
        metadata={"help": "Adapt the KL weight towards target_kl (Ziegler et al.); off keeps init_kl_coef."},
    )
    target_kl: float = field(
        default=6.0, metadata={"help": "The KL (nats per answer) the adaptive controller steers towards."}
    )
    kl_horizon: int = field(default=10000, metadata={"help": "Horizon of the adaptive KL controller, in answers."})
    whiten_advantages: bool = field(default=True, metadata={"help": "Normalise advantages per step."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    answer_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every sampled answer; None: what the base model's folder asks for (a "
            "control-token SFT model asks for its good token)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least_one(self, "mini_batch_size", "ppo_epochs", "kl_horizon")
        _positive(self, "cliprange", "cliprange_value", "target_kl", "max_grad_norm")
        if self.mini_batch_size > self.per_device_train_batch_size:
            raise ValueError(
                f"mini_batch_size ({self.mini_batch_size}) cannot exceed per_device_train_batch_size "
                f"({self.per_device_train_batch_size})"
            )
        if self.vf_coef < 0 or self.init_kl_coef < 0:
            raise ValueError("vf_coef and init_kl_coef cannot be negative")
        if not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError("gamma must be in (0, 1] and lam in [0, 1]")
        if self.use_qlora:  # PPO loads its policy, value head and reference itself, in fp32
            raise ValueError("PPO does not train on a 4-bit base yet: turn use_qlora off (use_lora works)")


@dataclass
class GRPOConfig(OnlineConfig):
    """Settings of a GRPO run (trl's ``GRPOTrainer``): group-relative advantages over sampled answers."""

    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Answers per forward pass; a multiple of num_generations."}
    )
    num_generations: int = field(default=4, metadata={"help": "Answers sampled per prompt (the group)."})
    beta: float = field(
        default=0.04, metadata={"help": "Weight of the KL penalty to the reference model; 0 loads no reference."}
    )
    epsilon: float = field(default=0.2, metadata={"help": "Clip range of the policy ratio."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be at least 2, not {self.num_generations}")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
                f"num_generations ({self.num_generations})"
            )
        if self.beta < 0:
            raise ValueError(f"beta cannot be negative, not {self.beta}")
        _positive(self, "epsilon")

    def trl_args(self, *, output_dir: Path, with_eval: bool):
        from trl import GRPOConfig as TrlGRPOConfig

        return TrlGRPOConfig(
            **self.trainer_arguments(output_dir=output_dir, with_eval=False),
            model_init_kwargs=self.model_init_kwargs(),
            num_generations=self.num_generations,
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
            beta=self.beta,
            epsilon=self.epsilon,
        )


@dataclass
class RLOOConfig(GRPOConfig):
    """Settings of an RLOO run (trl's ``RLOOTrainer``): REINFORCE with a leave-one-out baseline."""

    beta: float = field(
        default=0.05, metadata={"help": "Weight of the KL penalty to the reference model; 0 loads no reference."}
    )

    def trl_args(self, *, output_dir: Path, with_eval: bool):
        from trl import RLOOConfig as TrlRLOOConfig

        return TrlRLOOConfig(
            **self.trainer_arguments(output_dir=output_dir, with_eval=False),
            model_init_kwargs=self.model_init_kwargs(),
            num_generations=self.num_generations,
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
            beta=self.beta,
            epsilon=self.epsilon,
        )


# --------------------------------------------------------------------------------------------------------------
# Best-of-N: sampling, not training


@dataclass
class BestOfNConfig:
    """Settings of best-of-N sampling: N answers per prompt, the best kept by a reward model or scorer."""

    n: int = field(default=4, metadata={"help": "Answers sampled per prompt."})
    reward_model: str = field(default="", metadata={"help": REWARD_MODEL_HELP})
    reward_function: str = field(default="", metadata={"help": REWARD_FUNCTION_HELP})
    max_completion_length: int = field(default=24, metadata={"help": "Longest sampled answer, in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling: keep the smallest set of this mass."})
    batch_size: int = field(default=4, metadata={"help": "Prompts sampled together."})
    split: str = field(
        default="train",
        metadata={"help": "Which split of the snapshot gives the prompts: train, test or all."},
    )
    max_prompts: int | None = field(default=None, metadata={"help": "Use at most this many prompts; None: all."})
    answer_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every answer; None: what the model's folder asks for (a control-token SFT "
            "model asks for its good token)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sampling."})

    def __post_init__(self) -> None:
        dataclass_types_check(self)
        check_reward_source(self.reward_model, self.reward_function)
        _at_least_one(self, "n", "max_completion_length", "batch_size")
        _positive(self, "temperature")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.split not in ("train", "test", "all"):
            raise ValueError(f"split must be train, test or all, not {self.split!r}")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise ValueError(f"max_prompts must be at least 1 or None, not {self.max_prompts}")
