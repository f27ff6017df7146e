"""Label Studio as a peer: push a Loupe project's tasks to a Label Studio server, pull back the
annotations people made there (through `label-studio-sdk`).

`labelstudio_push` creates (or reuses) a Label Studio project whose labeling config fits the Loupe
project's kind (`annotation.formats.label_studio.label_config`) and sends one task per unit of work in
Loupe's task layout (`tasks_for_item`), in batches, skipping items already there. The Label Studio
project is found again by a marker in its description (`loupe-project:<slug>`), so nothing about it has
to be stored on the Loupe side.

`labelstudio_pull` exports the Label Studio project's annotated tasks as JSON, reads them with Loupe's
Label Studio reader and stores each annotation as a Loupe annotation by an inactive user named
`labelstudio:<email>`. Each carries a client request id made from the server, the project and the Label
Studio annotation id, so pulling again stores nothing twice. Everything pulled is checked before
anything is stored, as for file imports.

Images go to Label Studio as `data:` URIs of the stored image (Label Studio needs nothing else to show
them), or as `image_url_prefix` + the stored path where a server publishes the media folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from annotation.formats.common import FormatError, ItemRecord, ResponseRecord
from annotation.formats.label_studio import label_config, read_label_studio_json, tasks_for_item
from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    Correction,
    Item,
    PairwiseJudgment,
    Project,
    Ranking,
    Rating,
    Response,
)
from annotation.services.imports import ImportedAnnotators, LevelMap, record_check, segment_types
from annotation.services.preference_pairs import preference_pairs_rebuild, rating_scale
from annotation.services.queue import queue_units_sync
from loupe.errors import ApplicationError

MARKER = "loupe-project:"
PUSH_BATCH = 500
ANNOTATOR_PREFIX = "labelstudio"


@dataclass(frozen=True)
class PushReport:
    ls_project_id: int
    created_project: bool
    tasks: int
    items: int
    skipped_items: int

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class PullReport:
    ls_project_id: int
    created: int
    unchanged: int
    unknown_items: int
    pairs: int
    self_pairs_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def labelstudio_client(*, url: str, api_key: str) -> Any:
    """A `label_studio_sdk.LabelStudio` client (a legacy token or a personal access token both work)."""
    from label_studio_sdk import LabelStudio

    if not url.startswith(("http://", "https://")):
        raise ApplicationError("The Label Studio URL must start with http:// or https://.", {"field": "url"})
    if not api_key:
        raise ApplicationError("A Label Studio API key (access token) is needed.", {"field": "api_key"})
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key, timeout=120)


def _call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the SDK, turning its errors into messages a user can act on."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return function(*args, **kwargs)
    except ApiError as error:
        raise ApplicationError(
            f"Label Studio refused to {what} (HTTP {error.status_code}): {str(error.body)[:500]}",
            {"status": error.status_code},
        ) from error
    except httpx.HTTPError as error:
        raise ApplicationError(f"Could not reach Label Studio to {what}: {error}") from error


def _marker(project: Project) -> str:
    return f"{MARKER}{project.slug}"


def labelstudio_project_find(*, client: Any, project: Project) -> int | None:
    """The id of the newest Label Studio project pushed from `project`, if any."""
    found = []
    for candidate in _call("list projects", client.projects.list, page_size=100):
        if _marker(project) in (candidate.description or "").split():
            found.append(candidate.id)
    return max(found) if found else None


def _image_reference(item: Item, *, image_url_prefix: str | None) -> str | None:
    if not item.image:
        return None
    if image_url_prefix:
        return image_url_prefix.rstrip("/") + "/" + item.image
    path = Path(settings.MEDIA_ROOT) / item.image
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _item_record(item: Item, responses: list[Response]) -> ItemRecord:
    return ItemRecord(
        external_id=item.external_id,
        prompt=item.prompt,
        image=item.image or None,
        responses=[ResponseRecord(text=r.text, model=r.model_name) for r in responses],
        meta={},
    )


def _project_tasks(
    project: Project, *, skip: set[str], image_url_prefix: str | None, counts: dict[str, int]
) -> Iterator[dict[str, Any]]:
    scale = rating_scale(project)
    items = Item.objects.filter(project=project).order_by("id")
    for start in range(0, items.count(), PUSH_BATCH):
        batch = list(items[start : start + PUSH_BATCH])
        by_item: dict[int, list[Response]] = {}
        for response in Response.objects.filter(item__in=batch).order_by("item_id", "position"):
            by_item.setdefault(response.item_id, []).append(response)
        for item in batch:
            if item.external_id in skip:
                counts["skipped_items"] += 1
                continue
            record = _item_record(item, by_item.get(item.pk, []))
            image = _image_reference(item, image_url_prefix=image_url_prefix)
            counts["items"] += 1
            for task in tasks_for_item(record, kind=project.kind, image=image, scale=scale):
                yield task["data"]


def labelstudio_push(
    *,
    project: Project,
    url: str,
    api_key: str,
    title: str | None = None,
    image_url_prefix: str | None = None,
) -> PushReport:
    """Create (or reuse) the Label Studio project for `project` and send it the tasks it lacks."""
    client = labelstudio_client(url=url, api_key=api_key)
    ls_project_id = labelstudio_project_find(client=client, project=project)
    created = ls_project_id is None
    if created:
        with_image = Item.objects.filter(project=project).exclude(image="").exists()
        config = label_config(
            kind=project.kind,
            scale=rating_scale(project),
            types=project.hallucination_types or DEFAULT_HALLUCINATION_TYPES,
            with_image=with_image,
        )
        fields: dict[str, Any] = {
            "title": (title or f"Loupe {project.name}")[:50],
            "description": f"Tasks of the Loupe project {project.slug}. {_marker(project)}",
            "label_config": config,
        }
        if project.instructions:
            # Label Studio fails on an explicit null here, so the field is only sent with a value.
            fields["expert_instruction"] = project.instructions
        made = _call("create the project", client.projects.create, **fields)
        ls_project_id = made.id
        present: set[str] = set()
    else:
        present = {
            str((task.data or {}).get("external_id"))
            for task in _call("list tasks", client.tasks.list, project=ls_project_id, page_size=1000)
        }
    counts = {"items": 0, "skipped_items": 0, "tasks": 0}
    batch: list[dict[str, Any]] = []
    for data in _project_tasks(project, skip=present, image_url_prefix=image_url_prefix, counts=counts):
        batch.append(data)
        if len(batch) >= PUSH_BATCH:
            _call("import tasks", client.projects.import_tasks, ls_project_id, request=batch)
            counts["tasks"] += len(batch)
            batch = []
    if batch:
        _call("import tasks", client.projects.import_tasks, ls_project_id, request=batch)
        counts["tasks"] += len(batch)
    return PushReport(
        ls_project_id=ls_project_id,
        created_project=created,
        tasks=counts["tasks"],
        items=counts["items"],
        skipped_items=counts["skipped_items"],
    )


# ---------------------------------------------------------------------------------------------------
# Pull


def _exported_tasks(client: Any, ls_project_id: int) -> list[dict[str, Any]]:
    raw = b"".join(
        _call("export annotations", client.projects.exports.download_sync, ls_project_id, export_type="JSON")
    )
    try:
        tasks = json.loads(raw)
    except ValueError as error:
        raise ApplicationError(f"Label Studio's export is not JSON: {error}") from error
    emails = {user.id: user.email or user.username for user in _call("list users", client.users.list)}
    for task in tasks:
        for annotation in task.get("annotations") or []:
            who = annotation.get("completed_by")
            who_id = who.get("id") if isinstance(who, dict) else who
            annotation["loupe_annotator"] = emails.get(who_id) or f"user-{who_id}"
    return tasks


def _request_id(url: str, ls_project_id: int, annotation_id: str) -> str:
    digest = hashlib.sha256(f"{url.rstrip('/')}|{ls_project_id}|{annotation_id}".encode()).hexdigest()
    return f"ls-{digest[:40]}"


def _stored_response(responses: list[Response], wanted: ResponseRecord) -> Response | None:
    same_text = [r for r in responses if r.text == wanted.text]
    exact = [r for r in same_text if r.model_name == wanted.model]
    return (exact or same_text or [None])[0]


class _Pulled:
    """The annotations of one pull, built per item and stored together."""

    def __init__(self, *, url: str, ls_project_id: int, levels: LevelMap) -> None:
        self.url, self.ls_project_id, self.levels = url, ls_project_id, levels
        self.users = ImportedAnnotators(prefix=ANNOTATOR_PREFIX)
        self.rows: dict[type, list[Any]] = {PairwiseJudgment: [], Correction: [], Rating: [], Ranking: []}
        self.unchanged = 0
        self.items: list[Item] = []

    def add(self, item: Item, record: ItemRecord) -> None:
        responses = list(Response.objects.filter(item=item).order_by("position"))
        stored = [_stored_response(responses, r) for r in record.responses]
        known = {
            model: set(model.objects.filter(item=item).values_list("client_request_id", flat=True))
            for model in self.rows
        }
        taken: set[tuple] = set()
        for model, task_of in (
            (PairwiseJudgment, lambda row: ("pairwise",)),
            (Ranking, lambda row: ("ranking",)),
            (Correction, lambda row: ("correction", row.response_id)),
            (Rating, lambda row: ("rating", row.response_id)),
        ):
            for row in model.objects.filter(item=item):
                taken.add((task_of(row), row.annotator_id))
        before = sum(len(rows) for rows in self.rows.values())

        def fresh(model: type, source_id: str) -> str | None:
            request_id = _request_id(self.url, self.ls_project_id, source_id)
            if request_id in known[model]:
                self.unchanged += 1
                return None
            known[model].add(request_id)
            return request_id

        for j in record.pairwise:
            a, b = stored[j.response_a], stored[j.response_b]
            if a is None or b is None or not (request_id := fresh(PairwiseJudgment, j.source_id)):
                continue
            self.rows[PairwiseJudgment].append(
                PairwiseJudgment(
                    item=item,
                    annotator=self.users.user(j.annotator, taken=taken, task=("pairwise",)),
                    client_request_id=request_id,
                    response_a=a,
                    response_b=b,
                    choice=j.choice,
                    strength=max(1, round(j.strength)),
                    reason=j.reason,
                )
            )
        for c in record.corrections:
            response = stored[c.response]
            if response is None or not (request_id := fresh(Correction, c.source_id)):
                continue
            self.rows[Correction].append(
                Correction(
                    item=item,
                    annotator=self.users.user(c.annotator, taken=taken, task=("correction", response.pk)),
                    client_request_id=request_id,
                    response=response,
                    segments=[
                        {"start": s, "end": e, "replacement": text, "type": kind} for s, e, text, kind in c.segments
                    ],
                    corrected_text=c.corrected_text,
                )
            )
        for r in record.ratings:
            response = stored[r.response]
            if response is None or not (request_id := fresh(Rating, r.source_id)):
                continue
            self.rows[Rating].append(
                Rating(
                    item=item,
                    annotator=self.users.user(r.annotator, taken=taken, task=("rating", response.pk)),
                    client_request_id=request_id,
                    response=response,
                    level=self.levels.index(r.level),
                )
            )
        for r in record.rankings:
            order = [stored[i] for i in r.order]
            if any(o is None for o in order) or not (request_id := fresh(Ranking, r.source_id)):
                continue
            self.rows[Ranking].append(
                Ranking(
                    item=item,
                    annotator=self.users.user(r.annotator, taken=taken, task=("ranking",)),
                    client_request_id=request_id,
                    order=[o.pk for o in order],
                )
            )
        if sum(len(rows) for rows in self.rows.values()) > before:
            self.items.append(item)


def labelstudio_pull(*, project: Project, url: str, api_key: str, ls_project_id: int | None = None) -> PullReport:
    """Bring the annotations made in Label Studio back as Loupe annotations; pulling again adds nothing."""
    client = labelstudio_client(url=url, api_key=api_key)
    if ls_project_id is None:
        ls_project_id = labelstudio_project_find(client=client, project=project)
        if ls_project_id is None:
            raise ApplicationError(
                f"No Label Studio project was pushed from {project.slug} on this server; push it first.",
                {"field": "project"},
            )
    tasks = _exported_tasks(client, ls_project_id)
    levels = LevelMap(rating_scale(project))
    with tempfile.TemporaryDirectory(prefix="loupe-ls-pull-") as tmp:
        export = Path(tmp) / "export.json"
        export.write_text(json.dumps(tasks), encoding="utf-8")
        try:
            records = list(read_label_studio_json(export, scale=rating_scale(project)))
            # Everything is checked before anything is stored.
            for record in records:
                record_check(record, levels=levels, types=segment_types(project))
        except FormatError as error:
            raise ApplicationError(f"Label Studio's annotations do not fit this project: {error}") from error
    items = {
        item.external_id: item
        for item in Item.objects.filter(project=project, external_id__in=[r.external_id for r in records])
    }
    pulled = _Pulled(url=url, ls_project_id=ls_project_id, levels=levels)
    with transaction.atomic():
        for record in records:
            item = items.get(record.external_id)
            if item is not None:
                item.project = project
                pulled.add(item, record)
        for model, rows in pulled.rows.items():
            model.objects.bulk_create(rows, batch_size=1000)
        created = sum(len(rows) for rows in pulled.rows.values())
        if created:
            queue_units_sync(project=project)
        rebuilt = preference_pairs_rebuild(items=pulled.items)
    return PullReport(
        ls_project_id=ls_project_id,
        created=created,
        unchanged=pulled.unchanged,
        unknown_items=sum(1 for r in records if r.external_id not in items),
        pairs=rebuilt.created,
        self_pairs_dropped=rebuilt.self_pairs_dropped,
    )
