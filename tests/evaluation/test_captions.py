"""Caption metrics equal coco-caption's (pycocoevalcap) on a fixed corpus, and hand values on trivial cases.

Java starts slowly, so one scorer (one METEOR process) serves the whole module and each test scores once.
"""

import json

import pytest

from evaluation.benchmarks.captions import CaptionScorer, read_captions

CORPUS_PREDICTIONS = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs playing with a frisbee in the grass",
    "a plate of food with broccoli and rice",
    "There are three objects: a red circle on the left, a blue star and a green square.",
    "A cat sleeping on a laptop keyboard.",
    "a group of people standing around a kitchen",
    "An empty street with a stop sign",
    "The cartoon shows two lawyers arguing in a bar.",
]
CORPUS_REFERENCES = [
    ["A surfer rides a large wave.", "A man on a surfboard riding a wave in the ocean."],
    ["Two dogs play with a frisbee on the lawn.", "A pair of dogs chase a frisbee."],
    ["A plate with broccoli, rice and chicken.", "Food on a white plate, including broccoli."],
    ["There are three objects: a red circle on the left, a blue star at the top and a green square."],
    ["A cat lies on the keyboard of a laptop.", "A sleeping cat on a computer."],
    ["People gathered in a kitchen.", "Several people stand in a kitchen talking."],
    ["A stop sign on an empty road.", "A street corner with a red stop sign."],
    ["Two men in suits argue at a bar counter."],
]


@pytest.fixture(scope="module")
def scorer():
    with CaptionScorer() as s:
        yield s


def coco_caption_direct(predictions, references, meteor_scorer):
    """What coco-caption's COCOEvalCap.evaluate does, called on pycocoevalcap directly.

    ``meteor_scorer`` is a pycocoevalcap Meteor; the test lends it the scorer's running one (a second METEOR JVM
    would load its paraphrase tables again, about 8 s), the inputs it gets are built here.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    meteor, meteor_each = meteor_scorer.compute_score(gts, res)
    corpus = {f"BLEU-{n + 1}": bleu[n] for n in range(4)} | {"ROUGE-L": rouge, "METEOR": meteor}
    per = [
        {f"BLEU-{n + 1}": bleu_each[n][i] for n in range(4)} | {"ROUGE-L": rouge_each[i], "METEOR": meteor_each[i]}
        for i in range(len(predictions))
    ]
    return corpus, per


def test_equal_to_pycocoevalcap_and_hand_values(scorer):
    """Corpus and per-caption BLEU-1..4, ROUGE-L and METEOR equal coco-caption's; trivial cases by hand."""
    predictions = CORPUS_PREDICTIONS + ["a b c d", "the red circle is on the left"]
    references = CORPUS_REFERENCES + [["a b x d"], ["the red circle is on the left"]]
    result = scorer.score(predictions, references)
    corpus, per = coco_caption_direct(predictions, references, scorer._meteor)
    assert result.corpus == corpus
    assert result.per_caption == per
    assert 0.3 < corpus["BLEU-1"] < 0.95 and 0 < corpus["METEOR"] < 1
    # Hand values. "a b c d" vs "a b x d": 3 of 4 unigrams, 1 of 3 bigrams; LCS 3 of 4 (P = R = 0.75).
    partial, exact = result.per_caption[-2], result.per_caption[-1]
    assert partial["BLEU-1"] == pytest.approx(0.75, abs=1e-6)
    assert partial["BLEU-2"] == pytest.approx((0.75 * 1 / 3) ** 0.5, abs=1e-6)
    assert partial["ROUGE-L"] == pytest.approx(0.75)
    assert exact["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and exact["ROUGE-L"] == pytest.approx(1.0)
    assert exact["METEOR"] == 1.0  # METEOR 1.5 gives an identical caption no fragmentation penalty


def test_read_captions_lines_and_jsonl(tmp_path):
    """One caption per line, or JSON lines with several references per item."""
    (tmp_path / "pred.txt").write_text("a dog runs\n\n[not json\n")
    assert read_captions(tmp_path / "pred.txt") == [["a dog runs"], ["[not json"]]
    lines = [{"references": ["a", "b"]}, ["c", "d"], {"caption": "e"}]
    (tmp_path / "refs.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    assert read_captions(tmp_path / "refs.jsonl") == [["a", "b"], ["c", "d"], ["e"]]
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: no captions in this JSON line"):
        read_captions(tmp_path / "bad.jsonl")
