"""SHR, sentence-level hallucination ratio (HA-DPO, Zhao et al., "Beyond Hallucinations: Enhancing LVLMs through
Hallucination-Aware Direct Preference Optimization", 2023), as its `ha_dpo/shr_eval` computes it.

A detailed description is cut into sentences at every "." (HA-DPO's `get_model_cap`: stripped, empty pieces and
repeats -- a sentence equal to, or contained in, an earlier one -- dropped), numbered "1. ...", and judged:
- by a judge model (``judge_fn(prompt) -> text``) given the image's region descriptions and factual notes, with
  HA-DPO's published prompt (`JUDGE_PROMPT_V1`, GPT_JUDGE_PROMPT unchanged). The reply is read as HA-DPO's
  `post_process_no_revise` reads it: the non-empty lines after the one holding "Judgement:", each without its
  first word (the number), the class = the text before ":" lower-cased; when the number of lines differs from the
  number of sentences, no sentence of that description is judged;
- or against the shapes world's ground truth: a sentence is hallucinated iff it names a colour or a shape, or a
  "<colour> <shape>" object, that is not in the scene ("correct" otherwise).
SHR = sentences classed "hallucination" / sentences classed "hallucination", "correct" or "cannot judge", pooled
over all descriptions (HA-DPO's `hal_sents_ratio`); the word-weighted ratio is `hal_words_ratio`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

JUDGE_PROMPT_VERSION = "shr-hadpo-v1"
# HA-DPO's prompt as published (typos included); str.format(region descriptions, factual information, sentences).
JUDGE_PROMPT_V1 = """
Please help me judge if the comment of this image is hallucination or correct. 
I will give you a list of region description of a image. The format is [x1, y1, x2, y2]: region description, where [x1, y1, x2, y2] is the bounding box of the region. Highly overlapping bounding boxes may refer to the same object. This is the ground truth information of the image. Besides, I give you some factual information about the content of the image (which is 100% accurate). Your judgement should base on this information. However, this information only descibe the objects in the region of image, so it cannot descibe the subjective part of the image, e.g., atmosphere, style, emotion. In that case, you can return "Cannot judge".
Also, I will give you a list of comments of the image for you to judge if it is hallucination. Please give a judgement one by one along with the reason.

Your output should be:
Judgement:
1. hallucination or correct or cannot judge: <reason>
2. ...

Here are the region descriptions of the image:
{}

Factual Information:
{}

Here is the comment for you to judge (hallucination, correct, or cannot judge): 
{}
"""  # noqa: E501, W291
JUDGE_PROMPTS: dict[str, str] = {JUDGE_PROMPT_VERSION: JUDGE_PROMPT_V1}
CLASSES: tuple[str, ...] = ("hallucination", "correct", "cannot judge")


@dataclass
class SHRConfig:
    """Which judge prompt is used."""

    prompt_version: str = field(default=JUDGE_PROMPT_VERSION, metadata={"help": "Key of JUDGE_PROMPTS to use."})

    def __post_init__(self):
        if self.prompt_version not in JUDGE_PROMPTS:
            raise ValueError(f"unknown judge prompt version {self.prompt_version!r}")


@dataclass
class DescriptionSHR:
    sentences: list[str]
    classes: list[str | None]  # "hallucination", "correct", "cannot judge", other text, or None (no verdict)
    judge_reply: str = ""


@dataclass
class SHRResult:
    shr: float  # hal_sents_ratio
    hal_words_ratio: float
    n_sentences: int  # sentences with one of the three classes
    n_hallucinated: int
    n_unjudged: int
    descriptions: list[DescriptionSHR]
    prompt_version: str = ""


def split_sentences(text: str) -> list[str]:
    """Sentences as HA-DPO's get_model_cap cuts them (see the module docstring)."""
    kept: list[str] = []
    for piece in text.split("."):
        sentence = piece.strip()
        if not sentence or sentence in kept or any(sentence in earlier for earlier in kept):
            continue
        kept.append(sentence)
    return kept


def numbered_sentences(sentences: Sequence[str]) -> str:
    return "".join(f"{i}. {sentence}\n" for i, sentence in enumerate(sentences, start=1))


def parse_judgement(reply: str, n_sentences: int) -> list[str | None]:
    """One class per sentence from a judge reply, as HA-DPO's post_process_no_revise (see the module docstring)."""
    lines = [line for line in reply.split("\n") if line]
    start = next((i for i, line in enumerate(lines) if "Judgement:" in line), None)
    if start is None:
        return [None] * n_sentences
    verdicts = [" ".join(line.split(" ")[1:]).strip() for line in lines[start + 1 :]]
    verdicts = [v for v in verdicts if v]
    if len(verdicts) != n_sentences:
        return [None] * n_sentences
    return [v.split(":")[0].lower() for v in verdicts]


def shr_from_classes(descriptions: Sequence[DescriptionSHR], prompt_version: str = "") -> SHRResult:
    n_sent = n_hal = words = hal_words = unjudged = 0
    for description in descriptions:
        for sentence, cls in zip(description.sentences, description.classes, strict=True):
            if cls not in CLASSES:
                unjudged += 1
                continue
            # HA-DPO counts words of the sentence with the "." its seg_cap adds back.
            n_words = len((sentence + ".").split(" "))
            n_sent += 1
            words += n_words
            if cls == "hallucination":
                n_hal += 1
                hal_words += n_words
    return SHRResult(
        shr=n_hal / n_sent if n_sent else 0.0,
        hal_words_ratio=hal_words / words if words else 0.0,
        n_sentences=n_sent,
        n_hallucinated=n_hal,
        n_unjudged=unjudged,
        descriptions=list(descriptions),
        prompt_version=prompt_version,
    )


def shr_judged(
    descriptions: Sequence[str],
    region_descriptions: Sequence[str],
    judge_fn: Callable[[str], str],
    config: SHRConfig | None = None,
    factual: Sequence[str] | None = None,
) -> SHRResult:
    """SHR with a judge model: one call per description, with the image's region descriptions (one text per image,
    "[x1, y1, x2, y2]: phrase" lines) and optional factual notes (one text per image)."""
    config = config or SHRConfig()
    out = []
    for k, (text, regions) in enumerate(zip(descriptions, region_descriptions, strict=True)):
        sentences = split_sentences(text)
        facts = factual[k] if factual is not None else ""
        reply = judge_fn(JUDGE_PROMPTS[config.prompt_version].format(regions, facts, numbered_sentences(sentences)))
        out.append(DescriptionSHR(sentences, parse_judgement(reply, len(sentences)), reply))
    return shr_from_classes(out, config.prompt_version)


def sentence_hallucinated_in_scene(sentence: str, scene) -> bool:
    """Whether a sentence names an object, a colour or a shape not in a shapes-world scene."""
    from annotation.shapes_world import COLOURS, SHAPE_SYNONYMS, mentioned_objects

    present = {(o.colour, o.shape) for o in scene.objects}
    if any(obj not in present for obj in mentioned_objects(sentence)):
        return True
    colours = {o.colour for o in scene.objects}
    shapes = {o.shape for o in scene.objects}
    word_to_shape = {w: shape for shape, ws in SHAPE_SYNONYMS.items() for w in ws}
    for word in re.findall(r"[a-z]+", sentence.lower()):
        if word in COLOURS and word not in colours:
            return True
        if word in word_to_shape and word_to_shape[word] not in shapes:
            return True
    return False


def shr_shapes(descriptions: Sequence[str], scenes: Sequence) -> SHRResult:
    """SHR against shapes-world ground truth (``scenes[i]`` is the scene ``descriptions[i]`` describes)."""
    out = []
    for text, scene in zip(descriptions, scenes, strict=True):
        sentences = split_sentences(text)
        classes: list[str | None] = [
            "hallucination" if sentence_hallucinated_in_scene(s, scene) else "correct" for s in sentences
        ]
        out.append(DescriptionSHR(sentences, classes))
    return shr_from_classes(out, "shapes-ground-truth")
