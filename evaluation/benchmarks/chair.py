"""CHAIR: Caption Hallucination Assessment with Image Relevance (Rohrbach et al., EMNLP 2018).

CHAIR_s = captions naming at least one object that is not in the image / captions;
CHAIR_i = hallucinated object mentions / all object mentions (repeats count, as in the reference).

The numbers are those of the reference implementation, LisaAnne/Hallucination `utils/chair.py`, on the same
inputs: its synonym table (the file as it is, quirks included: the entry " motor bike" keeps its leading space, so
the two words "motor bike" never count), its two-word objects ("hot dog", "teddy bear", ...), its special cases
("baby bird" -> bird, "passenger jet" -> jet, "toilet seat" is not a chair), and ground truth per image from COCO
instances (category names through the synonym table) and/or COCO captions (the objects the same matcher finds in
the human captions).

The reference tokenises with nltk (`word_tokenize`: Punkt sentences, then the Treebank rules) and singularises
every token with `pattern.en.singularize`. Neither fits here: `pattern` does not install on Python 3.11 and nltk's
Punkt model is a separate download. So this module re-implements both, only as far as they decide which tokens
are object words: `_tokenize` splits off what the Treebank rules split off (sentence-final periods, commas,
brackets, quotes, "'s", ...; hyphens and slashes stay inside a word, so "teddy-bear" is not an object, as in the
reference), and `singularize` follows pattern's rules in pattern's order (Tom De Smedt, BSD licence; rules adapted
from Bermi Ferrer's Inflector), including its slips that the reference inherits: "glass" -> "glas" (hence the
reference's "wine glas" entry), "bus" -> "bu" (a lone singular "bus" is not found), "ties" -> "ty".
`tests/evaluation/test_chair.py` checks both against nltk's own tokenizer and a transcription of the reference's
matching. Speed: every distinct token is singularised once (cached), and matching is one dict lookup per 1- and
2-gram, so 100k captions take a few seconds (`bench/benchmarks.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# ---------------------------------------------------------------------------------------------- the matcher

# Two-word phrases the reference treats as one word (mapped to themselves), from its `coco_double_words`.
COCO_DOUBLE_WORDS: tuple[str, ...] = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate",
)  # fmt: skip
# "baby <animal>" / "adult <animal>" name the animal, not a person; "passenger jet" is a jet.
ANIMAL_WORDS: tuple[str, ...] = (
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub",
)  # fmt: skip
VEHICLE_WORDS: tuple[str, ...] = ("jet", "train")


def load_synonyms(path: str | Path) -> list[list[str]]:
    """Read a CHAIR synonym table: one line per class, the class name first, entries split on ", " as they are."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip().split(", ") for line in lines if line.strip()]


def _double_word_dict() -> dict[str, str]:
    table = {phrase: phrase for phrase in COCO_DOUBLE_WORDS}
    for animal in ANIMAL_WORDS:
        table[f"baby {animal}"] = animal
        table[f"adult {animal}"] = animal
    for vehicle in VEHICLE_WORDS:
        table[f"passenger {vehicle}"] = vehicle
    table["bow tie"] = "tie"
    table["toilet seat"] = "toilet"
    table["wine glas"] = "wine glass"  # pattern singularises "glass" to "glas"
    return table


@dataclass(frozen=True)
class ObjectMention:
    """One object word in a caption: the word as matched (after singularising) and the class it names."""

    word: str
    object: str


class ObjectMatcher:
    """Finds the objects a caption names, with one synonym table precompiled into dict lookups."""

    def __init__(self, synonyms: Sequence[Sequence[str]]):
        self.object_words: set[str] = set()
        self.word_to_object: dict[str, str] = {}
        for line in synonyms:
            self.object_words.update(line)
            for word in line:
                self.word_to_object[word] = line[0]
        self.objects: tuple[str, ...] = tuple(line[0] for line in synonyms)
        self.double_words = _double_word_dict()
        # Every first word of a two-word entry: only these tokens need a look at the next one.
        self._double_starts = {phrase.split(" ")[0] for phrase in self.double_words}

    @classmethod
    def from_file(cls, path: str | Path) -> ObjectMatcher:
        return cls(load_synonyms(path))

    def mentions(self, caption: str) -> list[ObjectMention]:
        """Object words of a caption in order, repeats kept, as the reference's `caption_to_words`."""
        words = [singularize(token) for token in _tokenize(caption.lower())]
        merged: list[str] = []
        i, n = 0, len(words)
        while i < n:
            word = words[i]
            if word in self._double_starts and i + 1 < n:
                phrase = self.double_words.get(f"{word} {words[i + 1]}")
                if phrase is not None:
                    merged.append(phrase)
                    i += 2
                    continue
            elif word in self.double_words:  # the reference also looks up a lone last word; none is an entry
                word = self.double_words[word]
            merged.append(word)
            i += 1
        if "toilet" in merged and "seat" in merged:  # "toilet seat" apart is still not a chair
            merged = [word for word in merged if word != "seat"]
        return [ObjectMention(word, self.word_to_object[word]) for word in merged if word in self.object_words]

    def objects_in(self, caption: str) -> set[str]:
        return {mention.object for mention in self.mentions(caption)}


# --------------------------------------------------------------------------------------------- tokenising

# What the Treebank rules (after Punkt's sentence split) cut off a word. Order matters: an ellipsis before a
# period; a comma or colon stays inside a number ("1,000", "10:30").
_SPLIT = re.compile(
    r"""\.\.+                                    # ellipsis
      | --                                       # double dash
      | [,:](?!\d)                               # comma / colon, not before a digit
      | [;@\#$%&?!()\[\]{}<>"*]                  # always apart
      | (?<!\.)\.(?=[\]\)}>"']*(?:\s|$))          # a period that ends a sentence
    """,
    re.VERBOSE,
)
# Clitics the Treebank rules split from the end of a word ("dog's" -> "dog", "'s"; "dogs'" -> "dogs", "'").
_CLITIC = re.compile(r"(?<=[^' ])('s|'m|'d|'ll|'re|'ve|n't|')$")


def _tokenize(text: str) -> list[str]:
    tokens = []
    for token in _SPLIT.sub(r" \g<0> ", text).split():
        if "'" in token and len(token) > 1:
            match = _CLITIC.search(token)
            if match is not None:
                tokens.append(token[: match.start()])
                tokens.append(match.group(1))
                continue
        tokens.append(token)
    return tokens


# ------------------------------------------------------------------------------------------ singularising
# pattern.en.singularize's rules, in its order (see the module docstring). Its first three checks return the
# word unchanged when it is the END of any listed word ("ears" is the end of "shears"), as pattern does.

_PLURAL_PREPOSITIONS = frozenset(
    (  # noqa: SIM905 (word lists read better as text)
        "about above across after among around at athwart before behind below beneath beside besides between betwixt "
        "beyond but by during except for from in into near of off on onto out over since till to under until unto "
        "upon with"
    ).split()
)
_UNINFLECTED = (  # noqa: SIM905
    "bison bream breeches britches carp chassis christmas clippers cod contretemps corps debris diabetes djinn "
    "eland elk flounder gallows georgia graffiti headquarters herpes high-jinks homework innings jackanapes "
    "mackerel measles mews mumps news pincers pliers proceedings rabies salmon scissors series shears species "
    "swine swiss trout tuna whiting wildebeest"
).split()
_UNCOUNTABLE = (  # noqa: SIM905
    "advice bread butter cheese electricity equipment fruit furniture garbage gravel happiness information "
    "ketchup knowledge love luggage mathematics mayonnaise meat mustard news progress research rice sand software "
    "understanding water"
).split()
# pattern lists "^pie" and "^tie" here too, as literal text that no word ends with: they never apply.
_IE = (  # noqa: SIM905
    "alergie auntie beanie birdie bogie bombie collie cookie cutie doggie eyrie freebie goonie groupie hankie "
    "hippie hoagie hottie indie junkie laddie laramie lingerie meanie newbie nightie oldie pixie quickie reverie "
    "rookie softie sortie stoolie sweetie techie toughie valkyrie veggie weenie yuppie zombie"
).split()
_IRREGULAR: tuple[tuple[str, str], ...] = (
    ("atlantes", "atlas"), ("atlases", "atlas"), ("axes", "axe"), ("beeves", "beef"), ("brethren", "brother"),
    ("children", "child"), ("corpora", "corpus"), ("corpuses", "corpus"), ("ephemerides", "ephemeris"),
    ("feet", "foot"), ("ganglia", "ganglion"), ("geese", "goose"), ("genera", "genus"), ("genii", "genie"),
    ("graffiti", "graffito"), ("helves", "helve"), ("kine", "cow"), ("leaves", "leaf"), ("loaves", "loaf"),
    ("men", "man"), ("mongooses", "mongoose"), ("monies", "money"), ("moves", "move"), ("mythoi", "mythos"),
    ("numena", "numen"), ("occipita", "occiput"), ("octopodes", "octopus"), ("opera", "opus"), ("opuses", "opus"),
    ("our", "my"), ("oxen", "ox"), ("penes", "penis"), ("penises", "penis"), ("people", "person"),
    ("sexes", "sex"), ("soliloquies", "soliloquy"), ("teeth", "tooth"), ("testes", "testis"),
    ("trilbys", "trilby"), ("turves", "turf"), ("zoa", "zoon"),
)  # fmt: skip
# (pattern, replacement); a group that did not take part in the match is replaced by "" as pattern does.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"(?i)(.)ae$", r"\1a"),
        (r"(?i)(.)itis$", r"\1itis"),
        (r"(?i)(.)eaux$", r"\1eau"),
        (r"(?i)(quiz)zes$", r"\1"),
        (r"(?i)(matr)ices$", r"\1ix"),
        (r"(?i)(ap|vert|ind)ices$", r"\1ex"),
        (r"(?i)^(ox)en", r"\1"),
        (r"(?i)(alias|status)es$", r"\1"),
        (r"(?i)([octop|vir])i$", r"\1us"),  # a character class in pattern, kept as it is
        (r"(?i)(cris|ax|test)es$", r"\1is"),
        (r"(?i)(shoe)s$", r"\1"),
        (r"(?i)(o)es$", r"\1"),
        (r"(?i)(bus)es$", r"\1"),
        (r"(?i)([m|l])ice$", r"\1ouse"),
        (r"(?i)(x|ch|ss|sh)es$", r"\1"),
        (r"(?i)(m)ovies$", r"\1ovie"),
        (r"(?i)(.)ombies$", r"\1ombie"),
        (r"(?i)(s)eries$", r"\1eries"),
        (r"(?i)([^aeiouy]|qu)ies$", r"\1y"),
        (r"([aeo]l)ves$", r"\1f"),
        (r"([^d]ea)ves$", r"\1f"),
        (r"arves$", "arf"),
        (r"erves$", "erve"),
        (r"([nlw]i)ves$", r"\1fe"),
        (r"(?i)([lr])ves$", r"\1f"),
        (r"([aeo])ves$", r"\1ve"),
        (r"(?i)(sive)s$", r"\1"),
        (r"(?i)(tive)s$", r"\1"),
        (r"(?i)(hive)s$", r"\1"),
        (r"(?i)([^f])ves$", r"\1fe"),
        (r"(?i)(^analy)ses$", r"\1sis"),
        (r"(?i)((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", r"\1\2sis"),
        (r"(?i)(.)opses$", r"\1opsis"),
        (r"(?i)(.)yses$", r"\1ysis"),
        (r"(?i)(h|d|r|o|n|b|cl|p)oses$", r"\1ose"),
        (r"(?i)(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", r"\1ose"),
        (r"(?i)(.)oses$", r"\1osis"),
        (r"(?i)([ti])a$", r"\1um"),
        (r"(?i)(n)ews$", r"\1ews"),
        (r"(?i)s$", ""),
    )
)


@lru_cache(maxsize=200_000)
def singularize(word: str) -> str:
    """The singular of an English noun, by pattern.en's rules (slips included; see the module docstring)."""
    if "-" in word:
        parts = word.split("-")
        if parts[1] in _PLURAL_PREPOSITIONS:  # "mothers-in-law" -> "mother-in-law"
            return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):
        return singularize(word[:-1]) + "'s"
    lower = word.lower()
    if any(entry.endswith(lower) for entry in _UNINFLECTED) or any(entry.endswith(lower) for entry in _UNCOUNTABLE):
        return word
    if any(lower.endswith(entry + "s") for entry in _IE):
        return lower
    for plural, singular in _IRREGULAR:
        if lower.endswith(plural):
            return re.sub("(?i)" + plural + "$", singular, word)
    for pattern, replacement in _RULES:
        match = pattern.search(word)
        if match is not None:
            for k, group in enumerate(match.groups(), start=1):
                if group is None:
                    replacement = replacement.replace(f"\\{k}", "")
            return pattern.sub(replacement, word)
    return word


# ----------------------------------------------------------------------------------------- ground truth


def ground_truth_from_instances(instances: dict, matcher: ObjectMatcher, image_ids: Iterable | None = None) -> dict:
    """image_id -> set of classes from a COCO instances JSON (category names mapped through the synonym table).

    With ``image_ids``, every one of them gets an entry, empty when the file has nothing on it (as the reference
    starts every captioned image with no objects).
    """
    wanted = None if image_ids is None else set(image_ids)
    names = {category["id"]: category["name"] for category in instances["categories"]}
    truth: dict = {} if wanted is None else {image_id: set() for image_id in wanted}
    for annotation in instances["annotations"]:
        image_id = annotation["image_id"]
        if wanted is None or image_id in wanted:
            truth.setdefault(image_id, set()).add(matcher.word_to_object[names[annotation["category_id"]]])
    return truth


def ground_truth_from_captions(captions: dict, matcher: ObjectMatcher, image_ids: Iterable | None = None) -> dict:
    """image_id -> set of classes named in the human captions of a COCO captions JSON (with ``image_ids``: an
    entry for each, as above)."""
    wanted = None if image_ids is None else set(image_ids)
    truth: dict = {} if wanted is None else {image_id: set() for image_id in wanted}
    for annotation in captions["annotations"]:
        image_id = annotation["image_id"]
        if wanted is None or image_id in wanted:
            truth.setdefault(image_id, set()).update(matcher.objects_in(annotation["caption"]))
    return truth


def ground_truth_from_files(paths: Sequence[str | Path], matcher: ObjectMatcher, image_ids: Iterable | None = None):
    """Merge ground truth from COCO instances and/or captions JSON files (told apart by their `categories`)."""
    wanted = None if image_ids is None else set(image_ids)
    truth: dict = {}  # each part below already has an entry for every wanted image
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "categories" in data and data["annotations"] and "category_id" in data["annotations"][0]:
            part = ground_truth_from_instances(data, matcher, wanted)
        else:
            part = ground_truth_from_captions(data, matcher, wanted)
        for image_id, objects in part.items():
            truth.setdefault(image_id, set()).update(objects)
    return truth


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class ChairConfig:
    """Where CHAIR's vocabulary comes from."""

    synonyms_path: str = field(
        default="",
        metadata={"help": "The synonym table (one class a line, the class name first), e.g. LisaAnne/Hallucination's."},
    )


@dataclass(frozen=True)
class CaptionInput:
    """One generated caption and the image it describes."""

    image_id: int | str
    caption: str


@dataclass
class CaptionChair:
    """Per-caption detail, as the reference's `sentences` entries."""

    image_id: int | str
    caption: str
    mentioned: list[tuple[str, str]]  # (word, class) for every object word, repeats kept
    hallucinated: list[tuple[str, str]]  # the mentions whose class is not in the image
    ground_truth: list[str]
    chair_s: int
    chair_i: float


@dataclass
class ChairResult:
    chair_s: float
    chair_i: float
    n_captions: int
    n_mentions: int
    n_hallucinated_mentions: int
    captions: list[CaptionChair]


def read_caption_inputs(path: str | Path) -> list[CaptionInput]:
    """Generated captions from a JSON list of ``{"image_id", "caption"}`` (what `benchmark chair --captions` takes)."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of {{'image_id', 'caption'}} objects")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "image_id" not in row or not isinstance(row.get("caption"), str):
            raise ValueError(f"{path}: item {i} needs an image_id and a caption")
        out.append(CaptionInput(row["image_id"], row["caption"]))
    return out


def chair_score(
    captions: Sequence[CaptionInput], ground_truth: dict, matcher: ObjectMatcher, *, missing_ok: bool = False
) -> ChairResult:
    """CHAIR_s and CHAIR_i over captions; ``ground_truth`` maps image_id -> classes present.

    An image with no ground truth is an error (the reference fails on it) unless ``missing_ok``, when it counts
    as an image with no objects.
    """
    details = []
    n_hallucinated_captions = n_mentions = n_hallucinated = 0
    for item in captions:
        if item.image_id not in ground_truth and not missing_ok:
            raise KeyError(f"no ground-truth objects for image {item.image_id!r}")
        truth = ground_truth.get(item.image_id, set())
        mentions = matcher.mentions(item.caption)
        wrong = [(m.word, m.object) for m in mentions if m.object not in truth]
        n_mentions += len(mentions)
        n_hallucinated += len(wrong)
        n_hallucinated_captions += bool(wrong)
        details.append(
            CaptionChair(
                image_id=item.image_id,
                caption=item.caption,
                mentioned=[(m.word, m.object) for m in mentions],
                hallucinated=wrong,
                ground_truth=sorted(truth),
                chair_s=int(bool(wrong)),
                chair_i=len(wrong) / len(mentions) if mentions else 0.0,
            )
        )
    return ChairResult(
        chair_s=n_hallucinated_captions / len(captions) if captions else 0.0,
        chair_i=n_hallucinated / n_mentions if n_mentions else 0.0,
        n_captions=len(captions),
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_hallucinated,
        captions=details,
    )


# ------------------------------------------------------------------------------------------- shapes world


def shapes_matcher() -> ObjectMatcher:
    """A CHAIR vocabulary for the shapes world: a class per shape, its words from shapes_world.SHAPE_SYNONYMS."""
    from annotation.shapes_world import SHAPE_SYNONYMS  # pure Pillow module, no Django

    return ObjectMatcher([[shape, *words] for shape, words in SHAPE_SYNONYMS.items()])


def shapes_chair(captions: Sequence[CaptionInput], scenes: dict) -> ChairResult:
    """CHAIR in the shapes world, where an object is a (colour, shape) pair.

    ``scenes`` maps image_id -> shapes_world.Scene. A mention is "<colour> <shape word>"
    (shapes_world.mentioned_objects); it is hallucinated when no object of that colour and shape is in the scene.
    """
    from annotation.shapes_world import mentioned_objects

    details = []
    n_bad_captions = n_mentions = n_bad = 0
    for item in captions:
        truth = {(o.colour, o.shape) for o in scenes[item.image_id].objects}
        mentions = mentioned_objects(item.caption)
        wrong = [(f"{c} {s}", f"{c} {s}") for c, s in mentions if (c, s) not in truth]
        n_mentions += len(mentions)
        n_bad += len(wrong)
        n_bad_captions += bool(wrong)
        details.append(
            CaptionChair(
                image_id=item.image_id,
                caption=item.caption,
                mentioned=[(f"{c} {s}", f"{c} {s}") for c, s in mentions],
                hallucinated=wrong,
                ground_truth=sorted(f"{c} {s}" for c, s in truth),
                chair_s=int(bool(wrong)),
                chair_i=len(wrong) / len(mentions) if mentions else 0.0,
            )
        )
    return ChairResult(
        chair_s=n_bad_captions / len(captions) if captions else 0.0,
        chair_i=n_bad / n_mentions if n_mentions else 0.0,
        n_captions=len(captions),
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_bad,
        captions=details,
    )
