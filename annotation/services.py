"""Writes for the annotation app: projects, imports, the task queue, annotations, pairs and snapshots.

Every function takes keyword-only arguments, checks what it needs, and raises `ApplicationError` with a
message a user can act on.
"""

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation import pairs as pair_rules
from annotation.formats.common import FormatError
from annotation.formats.common import ItemRecord
from annotation.formats.loupe_jsonl import read_loupe_jsonl
from annotation.images import CheckedImage, ImageRejected, ImageSource, image_check, url_fetch_checked
from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    DEFAULT_RATING_LEVELS,
    Assignment,
    AssignmentStatus,
    DatasetSnapshot,
    Item,
    Membership,
    PairSource,
    PairwiseChoice,
    PairwiseJudgment,
    PreferencePair,
    Project,
    ProjectKind,
    Response,
    Role,
)
from loupe.errors import ApplicationError

# ---------------------------------------------------------------------------------------------- projects


@transaction.atomic
def project_create(
    *,
    slug: str,
    kind: str,
    created_by: AbstractBaseUser | None,
    name: str = "",
    instructions: str = "",
    overlap: int = 1,
) -> Project:
    if kind not in ProjectKind.values:
        raise ApplicationError(f"Unknown project kind {kind!r}; choose one of {', '.join(ProjectKind.values)}.")
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A project with the slug {slug!r} already exists.")
    project = Project(
        slug=slug,
        name=name or slug,
        kind=kind,
        instructions=instructions,
        overlap=overlap,
        rating_levels=list(DEFAULT_RATING_LEVELS) if kind == ProjectKind.RATING else [],
        hallucination_types=list(DEFAULT_HALLUCINATION_TYPES) if kind == ProjectKind.CORRECTION else [],
        created_by=created_by,
    )
    project.full_clean()
    project.save()
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    return project


@transaction.atomic
def project_member_add(*, project: Project, user: AbstractBaseUser, role: str = Role.ANNOTATOR) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


# ----------------------------------------------------------------------------------------------- imports


@dataclass(frozen=True)
class ImportReport:
    created: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "unchanged": self.unchanged}


def _import_error(error: FormatError | ImageRejected, *, line: int, field: str = "image") -> ApplicationError:
    if isinstance(error, FormatError):
        return ApplicationError(str(error), {"line": error.line, "field": error.field})
    return ApplicationError(f"line {line}, field {field!r}: {error}", {"line": line, "field": field})


class _ImageLoader:
    """Resolves an item's image reference (relative path or URL) to checked bytes."""

    def __init__(self, *, base: Path) -> None:
        self.source = ImageSource(base)

    def load(self, reference: str) -> CheckedImage:
        if reference.startswith(("http://", "https://")):
            data = url_fetch_checked(
                reference,
                max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
                allow_private=settings.LOUPE_ALLOW_PRIVATE_URLS,
            )
        else:
            data = self.source.read(reference, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES)
        return image_check(data, max_bytes=settings.LOUPE_MAX_IMAGE_BYTES, max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS)


def _validated_records(path: Path) -> Iterator[ItemRecord]:
    """The file's records, raising ApplicationError naming the line and field of the first bad one."""
    try:
        yield from read_loupe_jsonl(path)
    except FormatError as error:
        raise _import_error(error, line=error.line or 0) from error


def items_import(*, project: Project, path: Path, images: Path | None = None, batch_size: int = 2000) -> ImportReport:
    """Import Loupe JSONL items with their images and responses; all or nothing.

    A first pass reads and checks every line and image without writing; only a file that passes whole is
    stored, in one transaction. Items whose external id the project already has are left as they are,
    so importing the same file again changes nothing.
    """
    loader = _ImageLoader(base=images if images is not None else path.parent)
    try:
        # Pass 1: validate everything (streaming; nothing is kept but the ids seen).
        for record in _validated_records(path):
            if record.image:
                try:
                    loader.load(record.image)
                except ImageRejected as error:
                    raise _import_error(error, line=record.line) from error
        # Pass 2: write.
        return _items_store(project=project, path=path, loader=loader, batch_size=batch_size)
    finally:
        loader.source.close()


def _items_store(*, project: Project, path: Path, loader: _ImageLoader, batch_size: int) -> ImportReport:
    written_files: list[Path] = []
    created = unchanged = 0
    try:
        with transaction.atomic():
            batch: list[ItemRecord] = []
            for record in _validated_records(path):
                batch.append(record)
                if len(batch) >= batch_size:
                    c, u = _items_store_batch(project=project, records=batch, loader=loader, written=written_files)
                    created, unchanged, batch = created + c, unchanged + u, []
            if batch:
                c, u = _items_store_batch(project=project, records=batch, loader=loader, written=written_files)
                created, unchanged = created + c, unchanged + u
    except BaseException:
        for written in written_files:
            written.unlink(missing_ok=True)
        raise
    return ImportReport(created=created, unchanged=unchanged)


def _image_store(image: CheckedImage, *, written: list[Path]) -> str:
    target = Path(settings.MEDIA_ROOT) / image.storage_name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(image.data)
        os.replace(handle.name, target)
        written.append(target)
    return image.storage_name


def _items_store_batch(
    *, project: Project, records: list[ItemRecord], loader: _ImageLoader, written: list[Path]
) -> tuple[int, int]:
    existing = set(
        Item.objects.filter(project=project, external_id__in=[r.external_id for r in records]).values_list(
            "external_id", flat=True
        )
    )
    fresh = [r for r in records if r.external_id not in existing]
    items = [
        Item(
            project=project,
            external_id=r.external_id,
            prompt=r.prompt,
            meta=r.meta,
            image=_image_store(loader.load(r.image), written=written) if r.image else "",
        )
        for r in fresh
    ]
    Item.objects.bulk_create(items)
    responses = [
        Response(item=item, position=position, text=response.text, model_name=response.model, meta=response.meta)
        for item, record in zip(items, fresh, strict=True)
        for position, response in enumerate(record.responses)
    ]
    Response.objects.bulk_create(responses)
    return len(fresh), len(records) - len(fresh)


# ----------------------------------------------------------------------------------------------- queue


def _active_assignments(now: datetime) -> Q:
    return Q(status=AssignmentStatus.SUBMITTED) | Q(status=AssignmentStatus.LEASED, lease_expires_at__gt=now)


@transaction.atomic
def assignment_next(*, project: Project, annotator: AbstractBaseUser) -> Assignment | None:
    """Lease the next item to `annotator`, or give back the one they already hold; None when none is left.

    An item is open while fewer than `project.overlap` annotators have submitted it or hold an unexpired
    lease on it; nobody is given the same item twice. The transaction takes the write lock first
    (IMMEDIATE on SQLite, a row lock on PostgreSQL), so two annotators asking at once never get the same slot.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.LOUPE_LEASE_SECONDS)
    held = (
        Assignment.objects.select_for_update()
        .filter(item__project=project, annotator=annotator, status=AssignmentStatus.LEASED)
        .order_by("id")
        .first()
    )
    if held is not None:
        held.lease_expires_at = lease_until
        held.save(update_fields=["lease_expires_at"])
        return held
    candidates = (
        Item.objects.select_for_update(skip_locked=True)
        .filter(project=project, done_count__lt=project.overlap)
        .exclude(assignments__annotator=annotator)
        .order_by("id")
    )
    for item in candidates[:50]:
        active = Assignment.objects.filter(item=item).filter(_active_assignments(now)).count()
        if active >= project.overlap:
            continue
        response_ids = list(item.responses.order_by("position").values_list("id", flat=True))
        shown = response_ids[:2] if project.kind == ProjectKind.PAIRWISE else response_ids
        random.SystemRandom().shuffle(shown)
        return Assignment.objects.create(
            item=item, annotator=annotator, lease_expires_at=lease_until, shown_order=shown
        )
    return None


def _assignment_for_submit(*, assignment_id: int, annotator: AbstractBaseUser) -> Assignment:
    assignment = (
        Assignment.objects.select_for_update().select_related("item__project").filter(pk=assignment_id).first()
    )
    if assignment is None or assignment.annotator_id != annotator.pk:
        raise ApplicationError("This task is not yours.", {"assignment": assignment_id})
    return assignment


@transaction.atomic
def pairwise_judgment_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    choice: str,
    client_request_id: str,
    strength: int = 1,
    reason: str = "",
    time_spent_ms: int = 0,
) -> PairwiseJudgment:
    """Store a pairwise choice once: a repeated request (same client_request_id) returns the first one."""
    repeated = PairwiseJudgment.objects.filter(annotator=annotator, client_request_id=client_request_id).first()
    if repeated is not None:
        return repeated
    if choice not in PairwiseChoice.values:
        raise ApplicationError(f"Unknown choice {choice!r}; choose one of {', '.join(PairwiseChoice.values)}.")
    if strength not in (1, 2):
        raise ApplicationError("Strength is 1 (slightly better) or 2 (clearly better).")
    assignment = _assignment_for_submit(assignment_id=assignment_id, annotator=annotator)
    if assignment.item.project.kind != ProjectKind.PAIRWISE:
        raise ApplicationError("This task is not a pairwise comparison.")
    if len(assignment.shown_order) < 2:
        raise ApplicationError("This item has fewer than two responses to compare.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise ApplicationError("This task was already submitted.", {"assignment": assignment.pk})
    response_a_id, response_b_id = assignment.shown_order[:2]
    try:
        with transaction.atomic():
            judgment = PairwiseJudgment.objects.create(
                item=assignment.item,
                annotator=annotator,
                assignment=assignment,
                client_request_id=client_request_id,
                response_a_id=response_a_id,
                response_b_id=response_b_id,
                choice=choice,
                strength=strength,
                reason=reason,
                time_spent_ms=time_spent_ms,
            )
    except IntegrityError as error:
        raise ApplicationError("You have already judged this item.") from error
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.submitted_at = timezone.now()
    assignment.save(update_fields=["status", "submitted_at"])
    Item.objects.filter(pk=assignment.item_id).update(done_count=F("done_count") + 1)
    preference_pairs_refresh(item=assignment.item)
    return judgment


# ------------------------------------------------------------------------------------------------ pairs


def _pairwise_votes(item: Item) -> Iterator[pair_rules.PairwiseVote]:
    judgments = PairwiseJudgment.objects.filter(item=item).select_related("response_a", "response_b")
    for judgment in judgments:
        yield pair_rules.PairwiseVote(
            item_key=item.external_id,
            prompt=item.prompt,
            image=item.image,
            text_a=judgment.response_a.text,
            text_b=judgment.response_b.text,
            response_a_id=judgment.response_a_id,
            response_b_id=judgment.response_b_id,
            choice=judgment.choice,
            strength=judgment.strength,
            annotator=str(judgment.annotator_id),
        )


@transaction.atomic
def preference_pairs_refresh(*, item: Item) -> list[PreferencePair]:
    """Re-derive an item's pairs from its annotations (the rules live in `annotation.pairs`)."""
    PreferencePair.objects.filter(item=item, source=PairSource.PAIRWISE).delete()
    rows = pair_rules.pairs_from_pairwise(_pairwise_votes(item))
    return PreferencePair.objects.bulk_create(
        PreferencePair(
            project_id=item.project_id,
            item=item,
            source=PairSource.PAIRWISE,
            chosen_response_id=row.meta["chosen_response"],
            rejected_response_id=row.meta["rejected_response"],
            chosen_text=row.chosen,
            rejected_text=row.rejected,
            margin=row.margin if row.margin is not None else 1.0,
            agreement=row.agreement if row.agreement is not None else 1.0,
            n_votes=row.n_votes,
            chosen_spans=[list(span) for span in row.chosen_spans],
            rejected_spans=[list(span) for span in row.rejected_spans],
        )
        for row in rows
    )


# -------------------------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class SnapshotFilter:
    sources: tuple[str, ...] = ()
    min_agreement: float = 0.0
    min_margin: float = 0.0
    seed: int = 0
    test_fraction: float = 0.1

    def as_dict(self) -> dict:
        return {
            "sources": sorted(self.sources),
            "min_agreement": self.min_agreement,
            "min_margin": self.min_margin,
            "seed": self.seed,
            "test_fraction": self.test_fraction,
        }


def _split_of(*, item_key: str, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for an item, stable across runs and machines: all pairs of an item share a side."""
    digest = hashlib.sha256(f"{seed}:{item_key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _snapshot_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterable[dict]:
    pairs = PreferencePair.objects.filter(
        project=project, agreement__gte=snapshot_filter.min_agreement, margin__gte=snapshot_filter.min_margin
    )
    if snapshot_filter.sources:
        pairs = pairs.filter(source__in=snapshot_filter.sources)
    pairs = pairs.order_by("item__external_id", "source", "chosen_text", "rejected_text").values_list(
        "item__external_id",
        "item__prompt",
        "item__image",
        "source",
        "chosen_text",
        "rejected_text",
        "margin",
        "agreement",
        "n_votes",
        "chosen_spans",
        "rejected_spans",
    )
    for key, prompt, image, source, chosen, rejected, margin, agreement, n_votes, c_spans, r_spans in pairs.iterator(
        chunk_size=5000
    ):
        yield {
            "item_key": key,
            "prompt": prompt,
            "image": image,
            "chosen": chosen,
            "rejected": rejected,
            "source": source,
            "margin": margin,
            "agreement": agreement,
            "n_votes": n_votes,
            "chosen_spans": c_spans,
            "rejected_spans": r_spans,
            "split": _split_of(item_key=key, seed=snapshot_filter.seed, test_fraction=snapshot_filter.test_fraction),
        }


def snapshot_create(
    *, project: Project, created_by: AbstractBaseUser | None, snapshot_filter: SnapshotFilter | None = None
) -> DatasetSnapshot:
    """Freeze the project's pairs that pass the filter into an immutable, content-hashed file.

    The hash covers the filter and every row, so freezing the same pairs with the same filter twice gives
    the same snapshot back rather than a second copy.
    """
    snapshot_filter = snapshot_filter or SnapshotFilter()
    snapshots_dir = Path(settings.SNAPSHOTS_DIR)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(snapshot_filter.as_dict(), sort_keys=True).encode())
    counts = {"train": 0, "test": 0}
    with tempfile.NamedTemporaryFile("wb", dir=snapshots_dir, suffix=".partial", delete=False) as handle:
        for row in _snapshot_rows(project=project, snapshot_filter=snapshot_filter):
            line = json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n"
            digest.update(line)
            handle.write(line)
            counts[row["split"]] += 1
    content_hash = digest.hexdigest()
    if counts["train"] + counts["test"] == 0:
        os.unlink(handle.name)
        raise ApplicationError("No preference pairs pass this filter; nothing to freeze.")
    target = snapshots_dir / f"{content_hash}.jsonl"
    os.replace(handle.name, target)
    with transaction.atomic():
        snapshot, _ = DatasetSnapshot.objects.get_or_create(
            project=project,
            content_hash=content_hash,
            defaults={
                "filters": snapshot_filter.as_dict(),
                "n_rows": counts["train"] + counts["test"],
                "n_train": counts["train"],
                "n_test": counts["test"],
                "path": str(target),
                "created_by": created_by,
            },
        )
    return snapshot


# ---------------------------------------------------------------------------------------------- exports


def snapshot_export(*, snapshot: DatasetSnapshot, export_format: str, out: Path) -> Path:
    """Write the snapshot in `export_format` into the folder `out` (data files, images, manifest.json)."""
    from annotation.formats import FORMAT_WRITERS
    from annotation.selectors import snapshot_rows

    writer = FORMAT_WRITERS.get(export_format)
    if writer is None:
        raise ApplicationError(
            f"Unknown export format {export_format!r}; choose one of {', '.join(sorted(FORMAT_WRITERS))}.",
            {"field": "format"},
        )
    def pair_rows() -> Iterator[dict]:
        for row in snapshot_rows(snapshot=snapshot):
            split = row.pop("split")
            yield {**row, "meta": {"split": split}}

    writer(
        rows=pair_rows(),
        out_dir=out,
        snapshot_hash=snapshot.content_hash,
        image_root=Path(settings.MEDIA_ROOT),
    )
    return out


def snapshot_export_archive(*, snapshot: DatasetSnapshot, export_format: str) -> Path:
    """A zip of the export, made once per (snapshot, format): snapshots are immutable, so it never goes stale."""
    import shutil
    import zipfile

    archive = Path(settings.EXPORTS_DIR) / f"{snapshot.content_hash[:16]}-{export_format}.zip"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        folder = snapshot_export(snapshot=snapshot, export_format=export_format, out=Path(tmp) / "export")
        partial = Path(tmp) / "export.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    bundle.write(file, file.relative_to(folder))
        shutil.move(partial, archive)
    return archive
