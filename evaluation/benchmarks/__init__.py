"""The plain-Python core of Loupe's benchmarks (no Django): one module per benchmark.

`pope` (yes/no object probing), `chair` (CHAIR_s / CHAIR_i), `object_halbench` (RLHF-V), `mmhal` (judged QA),
`shr` (hallucinated sentences), `captions` (coco-caption BLEU / ROUGE-L / METEOR), `humor` (win-rates and
Bradley-Terry ratings) and `human_eval` (MHumanEval-style rates from correction segments). Inputs and outputs are
dataclasses; the Django app around them loads rows, calls these functions and stores what they return.
"""
