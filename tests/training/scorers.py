"""Reward functions for tests, named as `tests.training.scorers:<name>` the way a config names the AI labeler's."""

CALLS: list[dict] = []


def word_count(prompts, completions, images=None):
    """A quarter point per word: a reward a tiny policy can learn to raise within a few PPO steps."""
    return [len(c.split()) / 4 for c in completions]


def recording(prompts, completions, images=None):
    """Records what it was given (to check images reach the scorer) and rewards longer answers a little."""
    CALLS.append({"prompts": list(prompts), "completions": list(completions), "images": images})
    return [len(c) / 100 for c in completions]


def mentions_red(prompts, completions, images=None):
    """1 for an answer that says "red", else 0."""
    return [1.0 if "red" in c.lower() else 0.0 for c in completions]
