"""Label Studio tasks with annotations, so a Label Studio user can open Loupe's work and bring it back.

Export writes `tasks.json` (a JSON array of tasks, streamed), `label_config.xml` (the labeling
interface the tasks fit) and the images under `images/`. One task layout per project kind:

- pairwise: one task per compared pair, `data.text1`/`data.text2`; a `Pairwise` result
  (`{"selected": "left"|"right"}`), or a `verdict` choice "tie"/"both_bad"; `strength` (Number) and
  `reason` (TextArea) results;
- rating: one task per response, `data.text`; a `rating` choice naming the level (Label Studio's
  star `Rating` result, `{"rating": k}`, is read as level k of `data.scale`);
- correction: one task per response, `data.text`; a `labels` region per segment (its label is the
  hallucination type), a per-region `replacement` TextArea sharing the region id, and a `corrected`
  TextArea with the whole corrected text;
- ranking: one task per item, `data.items` (`{"id", "title", "body"}`), a `Ranker` result listing the
  item ids best first.

Every task's data carries `external_id`, `prompt` and `image`, so the reader can put tasks of one item
back together. Annotators travel as `loupe_annotator` on each annotation (Label Studio's own
`completed_by` is a user id of that installation; it is read when `loupe_annotator` is absent).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from annotation.formats.common import (
    CorrectionRecord,
    FormatError,
    ImageCopier,
    ItemRecord,
    JsonArrayWriter,
    PairwiseRecord,
    RankingRecord,
    RatingRecord,
    ResponseRecord,
    check_type,
    iter_json_records,
    prepare_out_dir,
    write_manifest,
)
from annotation.pair_rules import HUMOR_SCALE, apply_segments

KINDS = ("pairwise", "rating", "correction", "ranking")
TASKS_NAME = "tasks.json"
CONFIG_NAME = "label_config.xml"


# ---------------------------------------------------------------------------------------------------
# Labeling configs


def label_config(
    *,
    kind: str,
    scale: Sequence[str] = HUMOR_SCALE,
    types: Sequence[str] = ("hallucination",),
    with_image: bool = True,
) -> str:
    """The Label Studio labeling config (XML) the exported tasks of `kind` fit."""
    head = '  <Text name="prompt" value="$prompt"/>\n'
    if with_image:
        head = '  <Image name="image" value="$image"/>\n' + head
    if kind == "pairwise":
        body = (
            '  <Pairwise name="pw" toName="text1,text2"/>\n'
            '  <Text name="text1" value="$text1"/>\n'
            '  <Text name="text2" value="$text2"/>\n'
            '  <Choices name="verdict" toName="text1" choice="single">\n'
            '    <Choice value="tie"/>\n    <Choice value="both_bad"/>\n  </Choices>\n'
            '  <Number name="strength" toName="text1" min="1" max="2"/>\n'
            '  <TextArea name="reason" toName="text1"/>\n'
        )
    elif kind == "rating":
        choices = "".join(f"    <Choice value={quoteattr(level)}/>\n" for level in scale)
        body = (
            '  <Text name="text" value="$text"/>\n'
            f'  <Choices name="rating" toName="text" choice="single">\n{choices}  </Choices>\n'
        )
    elif kind == "correction":
        labels = "".join(f"    <Label value={quoteattr(t)}/>\n" for t in types)
        body = (
            f'  <Labels name="label" toName="text">\n{labels}  </Labels>\n'
            '  <Text name="text" value="$text"/>\n'
            '  <TextArea name="replacement" toName="text" perRegion="true"/>\n'
            '  <TextArea name="corrected" toName="text"/>\n'
        )
    elif kind == "ranking":
        body = '  <List name="items" value="$items" title="Responses"/>\n  <Ranker name="rank" toName="items"/>\n'
    else:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return f"<View>\n{head}{body}</View>\n"


# ---------------------------------------------------------------------------------------------------
# Export


def _annotation(result: list[dict[str, Any]], annotator: str) -> dict[str, Any]:
    annotation: dict[str, Any] = {"result": result, "was_cancelled": False}
    if annotator:
        annotation["loupe_annotator"] = annotator
    return annotation


def _pairwise_result(judgment: PairwiseRecord, *, flipped: bool) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    if judgment.choice in ("a", "b"):
        left = (judgment.choice == "a") != flipped
        result.append(
            {
                "from_name": "pw",
                "to_name": "text1,text2",
                "type": "pairwise",
                "value": {"selected": "left" if left else "right"},
            }
        )
    else:
        result.append(
            {"from_name": "verdict", "to_name": "text1", "type": "choices", "value": {"choices": [judgment.choice]}}
        )
    result.append(
        {"from_name": "strength", "to_name": "text1", "type": "number", "value": {"number": judgment.strength}}
    )
    if judgment.reason:
        result.append(
            {"from_name": "reason", "to_name": "text1", "type": "textarea", "value": {"text": [judgment.reason]}}
        )
    return result


def _correction_result(correction: CorrectionRecord, original: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for index, (start, end, replacement, kind) in enumerate(sorted(correction.segments)):
        region = f"s{index}"
        value = {"start": start, "end": end, "text": original[start:end]}
        result.append(
            {
                "id": region,
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {**value, "labels": [kind]},
            }
        )
        result.append(
            {
                "id": region,
                "from_name": "replacement",
                "to_name": "text",
                "type": "textarea",
                "value": {"start": start, "end": end, "text": [replacement]},
            }
        )
    result.append(
        {
            "from_name": "corrected",
            "to_name": "text",
            "type": "textarea",
            "value": {"text": [correction.corrected_text]},
        }
    )
    return result


def tasks_for_item(item: ItemRecord, *, kind: str, image: str | None, scale: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The Label Studio tasks of one item for a project of `kind`."""
    base = {"external_id": item.external_id, "prompt": item.prompt, "image": image or "", "item_meta": item.meta}
    responses = item.responses
    if kind == "pairwise":
        by_pair: dict[tuple[int, int], list[PairwiseRecord]] = {}
        for judgment in item.pairwise:
            key = (judgment.response_a, judgment.response_b)
            if (key[1], key[0]) in by_pair:
                key = (key[1], key[0])
            by_pair.setdefault(key, []).append(judgment)
        if not by_pair:
            by_pair = {pair: [] for pair in itertools.combinations(range(len(responses)), 2)}
        for (a, b), judgments in by_pair.items():
            data = {
                **base,
                "text1": responses[a].text,
                "text2": responses[b].text,
                "model1": responses[a].model,
                "model2": responses[b].model,
            }
            annotations = [_annotation(_pairwise_result(j, flipped=j.response_a != a), j.annotator) for j in judgments]
            yield {"data": data, "annotations": annotations}
    elif kind == "rating":
        for index, response in enumerate(responses):
            data = {**base, "text": response.text, "model": response.model, "scale": list(scale)}
            if response.rating_counts is not None:
                data["rating_counts"] = response.rating_counts
            annotations = [
                _annotation(
                    [{"from_name": "rating", "to_name": "text", "type": "choices", "value": {"choices": [r.level]}}],
                    r.annotator,
                )
                for r in item.ratings
                if r.response == index
            ]
            yield {"data": data, "annotations": annotations}
    elif kind == "correction":
        for index, response in enumerate(responses):
            data = {**base, "text": response.text, "model": response.model}
            annotations = [
                _annotation(_correction_result(c, response.text), c.annotator)
                for c in item.corrections
                if c.response == index
            ]
            yield {"data": data, "annotations": annotations}
    elif kind == "ranking":
        items = [
            {"id": f"r{i}", "title": r.model or f"Response {i + 1}", "body": r.text} for i, r in enumerate(responses)
        ]
        annotations = [
            _annotation(
                [
                    {
                        "from_name": "rank",
                        "to_name": "items",
                        "type": "ranker",
                        "value": {"ranker": {"items": [f"r{i}" for i in ranking.order]}},
                    }
                ],
                ranking.annotator,
            )
            for ranking in item.rankings
        ]
        yield {"data": {**base, "items": items}, "annotations": annotations}
    else:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def write_label_studio_json(
    *,
    rows: Iterable[ItemRecord],
    out_dir: Path,
    snapshot_hash: str,
    kind: str,
    image_root: Path | None = None,
    scale: Sequence[str] = HUMOR_SCALE,
) -> dict[str, Any]:
    """`out_dir/tasks.json`, `out_dir/label_config.xml` and `out_dir/images/` for a project of `kind`.

    Image paths in the tasks are relative to `out_dir`; serve them (or use Label Studio's local file
    storage) so Label Studio can show them. Items with no annotations become tasks to annotate.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    out_dir = prepare_out_dir(out_dir)
    images = ImageCopier(out_dir, image_root=image_root)
    counts: Counter = Counter()
    types: set[str] = set()
    any_image = False
    with JsonArrayWriter(out_dir / TASKS_NAME) as writer:
        for item in rows:
            counts["items"] += 1
            any_image = any_image or bool(item.image)
            types.update(segment[3] for c in item.corrections for segment in c.segments)
            for task in tasks_for_item(item, kind=kind, image=images.copy(item.image), scale=scale):
                writer.write(task)
                counts["tasks"] += 1
                counts["annotations"] += len(task["annotations"])
    (out_dir / CONFIG_NAME).write_text(
        label_config(kind=kind, scale=scale, types=sorted(types) or ("hallucination",), with_image=any_image),
        encoding="utf-8",
    )
    files = [TASKS_NAME, CONFIG_NAME] + sorted(f"images/{p.name}" for p in (out_dir / "images").glob("*"))
    return write_manifest(
        out_dir,
        format_name="label-studio-json",
        snapshot_hash=snapshot_hash,
        counts={
            "items": counts["items"],
            "tasks": counts["tasks"],
            "annotations": counts["annotations"],
            "images": images.count,
        },
        files=files,
        extra={"kind": kind},
    )


# ---------------------------------------------------------------------------------------------------
# Import


class _ItemBuilder:
    """Collects the tasks of one item: responses deduplicated by (text, model)."""

    def __init__(self, record: ItemRecord) -> None:
        self.record = record
        self.index: dict[tuple[str, str], int] = {}

    def response(self, text: str, model: str, rating_counts: dict[str, int] | None = None) -> int:
        key = (text, model)
        if key not in self.index:
            self.index[key] = len(self.record.responses)
            self.record.responses.append(ResponseRecord(text=text, model=model, rating_counts=rating_counts))
        elif rating_counts is not None:
            self.record.responses[self.index[key]].rating_counts = rating_counts
        return self.index[key]


def _text(data: dict[str, Any], key: str, *, line: int) -> str:
    value = check_type(data[key], str, line=line, field=f"data.{key}")
    if not value.strip():
        raise FormatError("must not be empty", line=line, field=f"data.{key}")
    return value


def _str_field(data: dict[str, Any], key: str, *, line: int, default: str = "") -> str:
    if data.get(key) is None:
        return default
    return check_type(data[key], str, line=line, field=f"data.{key}")


def _annotator(annotation: dict[str, Any]) -> str:
    if annotation.get("loupe_annotator"):
        return str(annotation["loupe_annotator"])
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    return "" if completed_by is None else str(completed_by)


def _annotation_id(annotation: dict[str, Any]) -> str:
    return "" if annotation.get("id") is None else str(annotation["id"])


def _results(annotation: Any, *, line: int, field: str) -> list[dict[str, Any]]:
    check_type(annotation, dict, line=line, field=field)
    results = check_type(annotation.get("result", []), list, line=line, field=f"{field}.result")
    for index, result in enumerate(results):
        check_type(result, dict, line=line, field=f"{field}.result[{index}]")
        check_type(result.get("value"), dict, line=line, field=f"{field}.result[{index}].value")
        check_type(result.get("type"), str, line=line, field=f"{field}.result[{index}].type")
    return results


def _read_pairwise(
    builder: _ItemBuilder,
    a: int,
    b: int,
    results: list[dict[str, Any]],
    annotator: str,
    *,
    line: int,
    field: str,
    source_id: str = "",
) -> None:
    choice = None
    strength = 1.0
    reason = ""
    for index, result in enumerate(results):
        where = f"{field}.result[{index}].value"
        value = result["value"]
        if result["type"] == "pairwise":
            selected = value.get("selected")
            if selected not in ("left", "right"):
                raise FormatError("must be 'left' or 'right'", line=line, field=f"{where}.selected")
            choice = "a" if selected == "left" else "b"
        elif result["type"] == "choices" and result.get("from_name") == "verdict":
            choices = check_type(value.get("choices"), list, line=line, field=f"{where}.choices")
            if len(choices) != 1 or choices[0] not in ("tie", "both_bad"):
                raise FormatError("must be ['tie'] or ['both_bad']", line=line, field=f"{where}.choices")
            choice = choices[0]
        elif result["type"] == "number" and result.get("from_name") == "strength":
            strength = float(check_type(value.get("number"), float, line=line, field=f"{where}.number"))
        elif result["type"] == "textarea" and result.get("from_name") == "reason":
            texts = check_type(value.get("text"), list, line=line, field=f"{where}.text")
            reason = "\n".join(str(t) for t in texts)
    if choice is None:
        if results:
            raise FormatError("a pairwise annotation needs a pairwise or verdict result", line=line, field=field)
        return
    builder.record.pairwise.append(
        PairwiseRecord(
            response_a=a,
            response_b=b,
            choice=choice,
            strength=strength,
            reason=reason,
            annotator=annotator,
            source_id=source_id,
        )
    )


def _read_rating(
    builder: _ItemBuilder,
    response: int,
    results: list[dict[str, Any]],
    annotator: str,
    scale: Sequence[str],
    *,
    line: int,
    field: str,
    source_id: str = "",
) -> None:
    for index, result in enumerate(results):
        where = f"{field}.result[{index}].value"
        value = result["value"]
        if result["type"] == "choices":
            choices = check_type(value.get("choices"), list, line=line, field=f"{where}.choices")
            if len(choices) != 1 or choices[0] not in scale:
                raise FormatError(f"must be one level of {list(scale)}", line=line, field=f"{where}.choices")
            level = choices[0]
        elif result["type"] == "rating":
            stars = check_type(value.get("rating"), int, line=line, field=f"{where}.rating")
            if not 1 <= stars <= len(scale):
                raise FormatError(f"must be between 1 and {len(scale)}", line=line, field=f"{where}.rating")
            level = scale[stars - 1]
        else:
            continue
        builder.record.ratings.append(
            RatingRecord(response=response, level=level, annotator=annotator, source_id=source_id)
        )


def _read_correction(
    builder: _ItemBuilder,
    response: int,
    results: list[dict[str, Any]],
    annotator: str,
    *,
    line: int,
    field: str,
    source_id: str = "",
) -> None:
    original = builder.record.responses[response].text
    regions: dict[str, dict[str, Any]] = {}
    corrected: str | None = None
    for index, result in enumerate(results):
        where = f"{field}.result[{index}].value"
        value = result["value"]
        region = str(result.get("id", f"#{index}"))
        if result["type"] == "labels":
            start = check_type(value.get("start"), int, line=line, field=f"{where}.start")
            end = check_type(value.get("end"), int, line=line, field=f"{where}.end")
            if not 0 <= start <= end <= len(original):
                raise FormatError(
                    f"span [{start}, {end}) is outside the text (length {len(original)})", line=line, field=where
                )
            labels = check_type(value.get("labels"), list, line=line, field=f"{where}.labels")
            regions.setdefault(region, {})
            regions[region].update(start=start, end=end, type=str(labels[0]) if labels else "hallucination")
        elif result["type"] == "textarea":
            texts = check_type(value.get("text"), list, line=line, field=f"{where}.text")
            text = "\n".join(str(t) for t in texts)
            if "start" in value or result.get("from_name") == "replacement":
                regions.setdefault(region, {})["replacement"] = text
            else:
                corrected = text
    segments = []
    for region, parts in regions.items():
        if "start" not in parts:
            raise FormatError(f"replacement for region {region!r} has no labeled span", line=line, field=field)
        segments.append((parts["start"], parts["end"], parts.get("replacement", ""), parts["type"]))
    segments.sort()
    try:
        applied = apply_segments(original, segments)
    except ValueError as error:
        raise FormatError(str(error), line=line, field=field) from None
    if not segments and corrected is None:
        return
    builder.record.corrections.append(
        CorrectionRecord(
            response=response,
            corrected_text=corrected if corrected is not None else applied,
            segments=segments,
            annotator=annotator,
            source_id=source_id,
        )
    )


def read_label_studio_json(path: Path, *, scale: Sequence[str] = HUMOR_SCALE) -> Iterator[ItemRecord]:
    """Items from a Label Studio export (a JSON array of tasks) in the layouts `write_label_studio_json`
    writes, with their annotations; tasks sharing `data.external_id` make one item.

    A Label Studio JSON export is one array, so the file is read whole; a bad task raises `FormatError`
    with the line where the task starts and the field (`annotations[0].result[1].value.selected`).
    Cancelled annotations are skipped. `scale` names the rating levels where a task has no `data.scale`.
    """
    builders: dict[str, _ItemBuilder] = {}
    for line, task in iter_json_records(Path(path)):
        if not isinstance(task, dict):
            raise FormatError("each task must be a JSON object", line=line)
        data = task.get("data")
        if not isinstance(data, dict):
            raise FormatError("missing or not an object", line=line, field="data")
        external_id = data.get("external_id")
        if external_id is None:
            external_id = task.get("id", f"task-{line}")
        external_id = str(check_type(external_id, (str, int), line=line, field="data.external_id"))
        if external_id not in builders:
            prompt = _str_field(data, "prompt", line=line) or _str_field(data, "question", line=line)
            builders[external_id] = _ItemBuilder(
                ItemRecord(
                    external_id=external_id,
                    prompt=prompt,
                    image=_str_field(data, "image", line=line) or None,
                    meta=check_type(data.get("item_meta") or {}, dict, line=line, field="data.item_meta"),
                    line=line,
                )
            )
        builder = builders[external_id]
        annotations = check_type(task.get("annotations") or [], list, line=line, field="annotations")
        live = [
            (f"annotations[{i}]", a)
            for i, a in enumerate(annotations)
            if not (isinstance(a, dict) and a.get("was_cancelled"))
        ]
        if "text1" in data or "text2" in data:
            for key in ("text1", "text2"):
                if key not in data:
                    raise FormatError("missing (a pairwise task needs text1 and text2)", line=line, field=f"data.{key}")
            a = builder.response(_text(data, "text1", line=line), _str_field(data, "model1", line=line))
            b = builder.response(_text(data, "text2", line=line), _str_field(data, "model2", line=line))
            for field, annotation in live:
                results = _results(annotation, line=line, field=field)
                _read_pairwise(
                    builder,
                    a,
                    b,
                    results,
                    _annotator(annotation),
                    line=line,
                    field=field,
                    source_id=_annotation_id(annotation),
                )
        elif "items" in data:
            items = check_type(data["items"], list, line=line, field="data.items")
            ids: dict[str, int] = {}
            for index, entry in enumerate(items):
                where = f"data.items[{index}]"
                check_type(entry, dict, line=line, field=where)
                body = check_type(entry.get("body"), str, line=line, field=f"{where}.body")
                title = entry.get("title") or ""
                model = "" if str(title).startswith("Response ") else str(title)
                ids[str(entry.get("id", index))] = builder.response(body, model)
            for field, annotation in live:
                for index, result in enumerate(_results(annotation, line=line, field=field)):
                    if result["type"] != "ranker":
                        continue
                    where = f"{field}.result[{index}].value.ranker"
                    ranker = check_type(result["value"].get("ranker"), dict, line=line, field=where)
                    lists = [v for v in ranker.values() if isinstance(v, list)]
                    if len(lists) != 1:
                        raise FormatError("must hold one list of item ids", line=line, field=where)
                    unknown = [i for i in lists[0] if str(i) not in ids]
                    if unknown:
                        raise FormatError(f"unknown item ids {unknown}", line=line, field=where)
                    builder.record.rankings.append(
                        RankingRecord(
                            order=[ids[str(i)] for i in lists[0]],
                            annotator=_annotator(annotation),
                            source_id=_annotation_id(annotation),
                        )
                    )
        elif "text" in data:
            counts = data.get("rating_counts")
            if counts is not None:
                check_type(counts, dict, line=line, field="data.rating_counts")
                for level, n in counts.items():
                    check_type(n, int, line=line, field=f"data.rating_counts.{level}")
            response = builder.response(_text(data, "text", line=line), _str_field(data, "model", line=line), counts)
            task_scale = data.get("scale") or list(scale)
            check_type(task_scale, list, line=line, field="data.scale")
            for field, annotation in live:
                results = _results(annotation, line=line, field=field)
                types = {r["type"] for r in results}
                who, source_id = _annotator(annotation), _annotation_id(annotation)
                if types & {"labels", "textarea"}:
                    _read_correction(builder, response, results, who, line=line, field=field, source_id=source_id)
                else:
                    _read_rating(
                        builder, response, results, who, task_scale, line=line, field=field, source_id=source_id
                    )
        else:
            raise FormatError(
                "no response: expected data.text, data.text1 and data.text2, or data.items", line=line, field="data"
            )
    for builder in builders.values():
        yield builder.record
