"""CHAIR against hand counts and against a transcription of the reference implementation's matching.

The reference is LisaAnne/Hallucination `utils/chair.py`; `reference_caption_to_words` below transcribes its
`caption_to_words` line by line, with nltk's own tokenizer (Treebank rules after a Punkt sentence split; the
untrained Punkt differs from nltk's English model only on abbreviations, which these captions avoid) and pattern's
singularisation (`evaluation.benchmarks.chair.singularize`, checked on its own against pattern's rules here).
"""

import json
import random
from pathlib import Path

import pytest
from nltk.tokenize import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer

from evaluation.benchmarks.chair import (
    CaptionInput,
    ObjectMatcher,
    chair_score,
    ground_truth_from_files,
    load_synonyms,
    read_caption_inputs,
    shapes_chair,
    singularize,
)

SYNONYMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chair" / "coco_synonyms.txt"


@pytest.fixture(scope="module")
def matcher():
    return ObjectMatcher.from_file(SYNONYMS)


# ---------------------------------------------------------------------------- the reference, transcribed

_TREEBANK = NLTKWordTokenizer()
_PUNKT = PunktSentenceTokenizer()


def reference_tables(synonyms):
    mscoco_objects, inverse_synonym_dict = [], {}
    for synonym in synonyms:
        mscoco_objects.extend(synonym)
        for s in synonym:
            inverse_synonym_dict[s] = synonym[0]
    coco_double_words = [
        "motor bike",
        "motor cycle",
        "air plane",
        "traffic light",
        "street light",
        "traffic signal",
        "stop light",
        "fire hydrant",
        "stop sign",
        "parking meter",
        "suit case",
        "sports ball",
        "baseball bat",
        "baseball glove",
        "tennis racket",
        "wine glass",
        "hot dog",
        "cell phone",
        "mobile phone",
        "teddy bear",
        "hair drier",
        "potted plant",
        "bow tie",
        "laptop computer",
        "stove top oven",
        "hot dog",
        "teddy bear",
        "home plate",
    ]  # noqa: E501
    animal_words = [
        "bird",
        "cat",
        "dog",
        "horse",
        "sheep",
        "cow",
        "elephant",
        "bear",
        "zebra",
        "giraffe",
        "animal",
        "cub",
    ]  # noqa: E501
    vehicle_words = ["jet", "train"]
    double_word_dict = {}
    for double_word in coco_double_words:
        double_word_dict[double_word] = double_word
    for animal_word in animal_words:
        double_word_dict["baby %s" % animal_word] = animal_word  # noqa: UP031 (transcribed as written)
        double_word_dict["adult %s" % animal_word] = animal_word  # noqa: UP031 (transcribed as written)
    for vehicle_word in vehicle_words:
        double_word_dict["passenger %s" % vehicle_word] = vehicle_word  # noqa: UP031 (transcribed as written)
    double_word_dict["bow tie"] = "tie"
    double_word_dict["toilet seat"] = "toilet"
    double_word_dict["wine glas"] = "wine glass"
    return mscoco_objects, inverse_synonym_dict, double_word_dict


def reference_caption_to_words(caption, tables):
    mscoco_objects, inverse_synonym_dict, double_word_dict = tables
    words = [w for sentence in _PUNKT.tokenize(caption.lower()) for w in _TREEBANK.tokenize(sentence)]
    words = [singularize(w) for w in words]
    i = 0
    double_words = []
    while i < len(words):
        double_word = " ".join(words[i : i + 2])
        if double_word in double_word_dict:
            double_words.append(double_word_dict[double_word])
            i += 2
        else:
            double_words.append(words[i])
            i += 1
    words = double_words
    if ("toilet" in words) & ("seat" in words):
        words = [word for word in words if word != "seat"]
    words = [word for word in words if word in set(mscoco_objects)]
    node_words = []
    for word in words:
        node_words.append(inverse_synonym_dict[word])
    return words, node_words


def reference_compute_chair(caps, imid_to_objects, tables):
    num_caps = num_hallucinated_caps = hallucinated_word_count = coco_word_count = 0.0
    for cap_eval in caps:
        words, node_words = reference_caption_to_words(cap_eval["caption"], tables)
        gt_objects = imid_to_objects[cap_eval["image_id"]]
        coco_word_count += len(node_words)
        hallucinated = False
        for word, node_word in zip(words, node_words):  # noqa: B007, B905 (transcribed as written)
            if node_word not in gt_objects:
                hallucinated_word_count += 1
                hallucinated = True
        num_caps += 1
        if hallucinated:
            num_hallucinated_caps += 1
    return num_hallucinated_caps / num_caps, hallucinated_word_count / coco_word_count


# ------------------------------------------------------------------------------------ hand-checked cases

# (caption, image's true classes, the classes the caption names in order, hand-counted)
CASES = [
    ("A man riding a horse on a beach.", {"person", "horse"}, ["person", "horse"]),
    ("Two women and a child sit at a dining table.", {"person", "dining table"}, ["person", "person", "dining table"]),
    ("A dog chases a frisbee in the park.", {"dog"}, ["dog", "frisbee"]),
    ("Two hot dogs on a plate next to a cup of coffee.", {"hot dog", "cup"}, ["hot dog", "cup"]),
    ("A teddy bear sits on a bed.", {"teddy bear", "bed"}, ["teddy bear", "bed"]),
    ("A baby bird on a branch.", {"bird"}, ["bird"]),
    ("An adult elephant and a baby elephant walk.", {"elephant"}, ["elephant", "elephant"]),
    ("A passenger jet at the gate.", {"airplane"}, ["airplane"]),
    ("A bathroom with a toilet seat up.", {"toilet"}, ["toilet"]),
    ("The toilet is next to a seat.", {"toilet"}, ["toilet"]),
    ("A chair and a seat by the window.", {"chair"}, ["chair", "chair"]),
    ("Wine glasses on a table.", {"wine glass", "dining table"}, ["wine glass", "dining table"]),
    ("A wine glass and a bottle.", {"wine glass"}, ["wine glass", "bottle"]),
    ("Giraffes and zebras graze together.", {"giraffe"}, ["giraffe", "zebra"]),
    ("People walking past buses on the street.", {"person", "bus"}, ["person", "bus"]),
    ("A red bus parked by the road.", {"bus"}, []),  # pattern: "bus" -> "bu", not a synonym
    ("A man in a bow tie.", {"person", "tie"}, ["person", "tie"]),
    ("Men wearing ties.", {"person", "tie"}, ["person"]),  # "ties" -> "ty"
    ("A cat sleeping on a laptop computer.", {"cat", "laptop"}, ["cat", "laptop"]),
    ("A motor bike next to a motorcycle.", {"motorcycle"}, ["motorcycle"]),  # " motor bike" kept as in the file
    ("Knives, forks and spoons on a counter.", {"knife", "fork"}, ["knife", "fork", "spoon"]),
    ("A plate of broccoli and carrots.", {"broccoli", "carrot"}, ["broccoli", "carrot"]),
    ("The skier holds his skis.", {"person", "skis"}, ["person", "skis"]),
    ("Three sheep in a field with a dog.", {"sheep"}, ["sheep", "dog"]),
    ("A teddy-bear and a hot-dog.", {"person"}, []),  # hyphenated words stay one token
    ("Two cell phones and a remote.", {"cell phone"}, ["cell phone", "remote"]),
    ("A fire hydrant by a stop sign.", {"fire hydrant", "stop sign"}, ["fire hydrant", "stop sign"]),
    ("Kids flying kites. A boy holds a surfboard.", {"person", "kite"}, ["person", "kite", "person", "surfboard"]),
    ("The dog's bowl is by the refrigerator.", {"dog", "bowl"}, ["dog", "bowl", "refrigerator"]),
    ("A clock tower above a train station.", {"clock", "train"}, ["clock", "train"]),
]


def test_synonym_table_loads_as_published():
    """The shared table has the 80 COCO classes, the class name first, entries exactly as in the file."""
    synonyms = load_synonyms(SYNONYMS)
    assert len(synonyms) == 80
    assert synonyms[0][0] == "person" and synonyms[-1][0] == "toothbrush"
    assert " motor bike" in synonyms[3]  # the file's double space survives the ", " split, as in the reference
    matcher = ObjectMatcher(synonyms)
    assert matcher.word_to_object["jetliner"] == "airplane"
    assert matcher.word_to_object["teddy bear"] == "teddy bear"


@pytest.mark.parametrize(("caption", "truth", "expected"), CASES)
def test_caption_objects_match_hand_count(matcher, caption, truth, expected):
    """Each caption names exactly the hand-counted classes, in order, repeats kept."""
    assert [m.object for m in matcher.mentions(caption)] == expected


def test_chair_totals_match_hand_count(matcher):
    """CHAIR_s and CHAIR_i over the hand cases equal the hand-counted totals."""
    captions = [CaptionInput(i, c) for i, (c, _, _) in enumerate(CASES)]
    truth = {i: t for i, (_, t, _) in enumerate(CASES)}
    n_mentions = sum(len(e) for _, _, e in CASES)
    bad = [sum(o not in t for o in e) for _, t, e in CASES]
    result = chair_score(captions, truth, matcher)
    assert (result.n_mentions, result.n_hallucinated_mentions) == (n_mentions, sum(bad)) == (55, 8)
    assert result.chair_s == pytest.approx(sum(b > 0 for b in bad) / len(CASES)) == pytest.approx(8 / 30)
    assert result.chair_i == pytest.approx(8 / 55)
    frisbee = result.captions[2]
    assert frisbee.hallucinated == [("frisbee", "frisbee")] and frisbee.chair_s == 1 and frisbee.chair_i == 0.5


def test_matches_reference_transcription(matcher):
    """Object words and CHAIR equal the transcribed reference on the hand cases and 1,000 random captions."""
    synonyms = load_synonyms(SYNONYMS)
    tables = reference_tables(synonyms)
    captions = [c for c, _, _ in CASES]
    rng = random.Random(13)
    vocab = [w for line in synonyms for w in line if w.strip()] + [
        "hot dogs", "teddy bears", "wine glasses", "glasses", "ties", "buses", "baby", "adult", "passenger", "toilet",
        "seat", "people", "men", "women", "children", "knives", "mice", "a", "the", "on", "with", "and", "of",
    ]  # fmt: skip
    for _ in range(1000):
        words = [rng.choice(vocab) + rng.choice(["", "", "", "s", "es", "'s"]) for _ in range(rng.randint(3, 14))]
        text = ""
        for w in words:
            text += w + rng.choice([" ", " ", " ", ", ", ". ", "; ", " (", ") ", " - ", "! "])
        captions.append(text.strip())
    for caption in captions:
        words, nodes = reference_caption_to_words(caption, tables)
        mine = matcher.mentions(caption)
        assert [(m.word, m.object) for m in mine] == list(zip(words, nodes, strict=True)), caption
    caps = [{"image_id": i % 7, "caption": c} for i, c in enumerate(captions)]
    truth = {k: {"person", "dog", "car", "hot dog", "tie"} for k in range(7)}
    ref_s, ref_i = reference_compute_chair(caps, truth, tables)
    result = chair_score([CaptionInput(c["image_id"], c["caption"]) for c in caps], truth, matcher)
    assert (result.chair_s, result.chair_i) == (ref_s, ref_i)


@pytest.mark.parametrize(
    ("word", "singular"),
    [
        ("dogs", "dog"), ("glasses", "glass"), ("glass", "glas"), ("buses", "bus"), ("bus", "bu"), ("ties", "ty"),
        ("people", "person"), ("women", "woman"), ("policemen", "policeman"), ("children", "child"),
        ("knives", "knife"), ("mice", "mouse"), ("skis", "ski"), ("scissors", "scissors"), ("sheep", "sheep"),
        ("benches", "bench"), ("boxes", "box"), ("potatoes", "potato"), ("leaves", "leaf"), ("wolves", "wolf"),
        ("cookies", "cookies"), ("puppies", "puppy"), ("ears", "ears"), ("pasta", "pastum"), ("feet", "foot"),
        ("dogs'", "dog's"), ("mothers-in-law", "mother-in-law"), ("giraffe", "giraffe"), ("oxen", "ox"),
    ],
)  # fmt: skip
def test_singularize_follows_pattern_rules(word, singular):
    """pattern.en.singularize's results, slips included ("glass" -> "glas", "bus" -> "bu", "-ie" words kept plural)."""
    assert singularize(word) == singular


def test_ground_truth_from_coco_instances_and_captions(matcher, tmp_path):
    """Instances give classes through the synonym table; captions add the classes their words name."""
    instances = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 62, "name": "dining table"}],
        "annotations": [
            {"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 18}, {"image_id": 2, "category_id": 62},
        ],
    }  # fmt: skip
    captions = {"annotations": [{"image_id": 2, "caption": "A cat on a table."}, {"image_id": 3, "caption": "x"}]}
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    truth = ground_truth_from_files([tmp_path / "instances.json", tmp_path / "captions.json"], matcher, [1, 2, 4])
    # Image 4 has no annotations: no objects, as the reference starts every captioned image.
    assert truth == {1: {"person", "dog"}, 2: {"dining table", "cat"}, 4: set()}
    assert ground_truth_from_files([tmp_path / "instances.json"], matcher, [1, 4]) == {1: {"person", "dog"}, 4: set()}
    generated = [{"image_id": 1, "caption": "A man and his dog on a couch."}, {"image_id": 2, "caption": "A cat."}]
    (tmp_path / "generated.json").write_text(json.dumps(generated))
    result = chair_score(read_caption_inputs(tmp_path / "generated.json"), truth, matcher)
    assert result.chair_s == 0.5 and result.chair_i == pytest.approx(1 / 4)
    assert result.captions[0].hallucinated == [("couch", "couch")]
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(ValueError, match="item 0 needs an image_id and a caption"):
        read_caption_inputs(tmp_path / "bad.json")
    with pytest.raises(KeyError, match="no ground-truth objects for image 9"):
        chair_score([CaptionInput(9, "A dog.")], truth, matcher)


def test_shapes_world_chair():
    """In the shapes world a mention is a (colour, shape) pair; one not in the scene is hallucinated."""
    from annotation.shapes_world import Scene, SceneObject

    scene = Scene(seed=1, objects=[SceneObject("circle", "red", 10, 10, 8), SceneObject("square", "blue", 40, 40, 8)])
    result = shapes_chair(
        [
            CaptionInput("s", "There are two objects: a red circle on the left and a blue box at the bottom."),
            CaptionInput("s", "A green triangle and a red disc."),
        ],
        {"s": scene},
    )
    assert result.n_mentions == 4 and result.n_hallucinated_mentions == 1
    assert result.chair_s == 0.5 and result.chair_i == 0.25
    assert result.captions[1].hallucinated == [("green triangle", "green triangle")]
