"""The AI labeler (RLAIF-V style, design.md §8): plain Python, no Django.

An answer is divided into atomic claims (``claims``), each claim becomes a yes/no question (``claims``,
``prompts``), a labeler model answers every question with the image (``backends``), a claim is accepted iff
P(yes)+P(Yes) > P(no)+P(No) at the first answer token (``verdicts``), and the answers of a prompt are scored
and paired (``pipeline``, through ``annotation.pair_rules``). ``pipeline`` also rewrites an answer from its
rejected claims (HA-DPO) and samples deconfounded candidates. Settings live in ``config.LabelerConfig``.

Only ``backends.local`` imports torch and transformers, inside its functions' callers: the web process may
import the rest.
"""
