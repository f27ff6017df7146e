"""The labeler's prompt texts, versioned: a verdict records the version it was made with.

``AIFeedback.prompt_version`` stores the version, so a change of wording is a new version (add ``v2``; never
edit ``v1`` in place), and verdicts made with different wordings are never mixed in one pair set.

- ``divide``: split an answer into atomic claims, one per line (RLAIF-V's divide step);
- ``question``: turn one claim into a yes/no question;
- ``conquer``: what the labeler is asked with the image; ``{question}`` is the claim's question;
- ``rewrite_claims`` / ``rewrite_segments``: HA-DPO's rewrite of an answer given the claims the labeler
  rejected, or the segments an annotator marked as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptSet:
    """One version of every prompt the labeler sends (fields are ``str.format`` templates)."""

    version: str
    divide: str
    question: str
    conquer: str
    rewrite_claims: str
    rewrite_segments: str


V1 = PromptSet(
    version="v1",
    divide=(
        "Split the following answer about an image into short, atomic factual claims about the image. "
        "Write one claim per line, in the answer's own words, and nothing else.\n\nAnswer: {answer}"
    ),
    question=(
        "Rewrite the following claim about an image as a yes/no question whose answer is yes exactly when the "
        "claim is true. Write only the question.\n\nClaim: {claim}"
    ),
    conquer="{question} Please answer yes or no.",
    rewrite_claims=(
        "Here is a question about the image and an answer to it. The statements listed after the answer are "
        "wrong. Rewrite the answer so that it no longer says them, changing as little as possible and keeping "
        "its style and length. Write only the corrected answer.\n\nQuestion: {prompt}\nAnswer: {answer}\n"
        "Wrong statements:\n{problems}"
    ),
    rewrite_segments=(
        "Here is a question about the image and an answer to it. The quoted parts of the answer listed after it "
        "are wrong. Rewrite the answer with those parts corrected, changing as little as possible and keeping "
        "its style and length. Write only the corrected answer.\n\nQuestion: {prompt}\nAnswer: {answer}\n"
        "Wrong parts:\n{problems}"
    ),
)

PROMPTS: dict[str, PromptSet] = {V1.version: V1}


def prompt_set(version: str) -> PromptSet:
    """The prompts of ``version``; ``ValueError`` naming the known versions otherwise."""
    try:
        return PROMPTS[version]
    except KeyError:
        raise ValueError(f"unknown labeler prompt version {version!r}; known: {', '.join(PROMPTS)}") from None
