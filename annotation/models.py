"""Projects, items and model responses, the annotation queue, annotations, and the preference data derived
from them (design.md §4). Models hold fields and constraints; rules live in `services.py`."""

from django.conf import settings
from django.db import models

from annotation.assignment import UNIT_ITEM, task_unit

DEFAULT_RATING_LEVELS = ["unfunny", "somewhat funny", "funny"]
DEFAULT_HALLUCINATION_TYPES = ["object", "attribute", "count", "position/relation", "other"]


class ProjectKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise preference"
    CORRECTION = "correction", "Segment-level correction"
    RATING = "rating", "Crowd rating"
    RANKING = "ranking", "Ranking"


class Visibility(models.TextChoices):
    MEMBERS = "members", "Members only"
    PUBLIC = "public", "Public crowd"


class Project(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=ProjectKind.choices)
    instructions = models.TextField(blank=True, default="")
    rating_levels = models.JSONField(default=list, blank=True)
    hallucination_types = models.JSONField(default=list, blank=True)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Distinct annotators per item.")
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.MEMBERS)
    show_ai_suggestions = models.BooleanField(default=False)
    # Public crowd projects (no account): how many items one participant may rate, and how fast.
    public_quota = models.PositiveIntegerField(default=200)
    public_rate_per_minute = models.PositiveIntegerField(default=60)
    gold_rate = models.FloatField(
        default=0.0, help_text="Fraction of the tasks served that are gold tasks (known answers), 0 to 1."
    )
    # Rating projects: which caption is shown next (`annotation.sampling`).
    rating_sampling = models.CharField(
        max_length=10,
        choices=[("uniform", "Uniform: least-rated caption first"), ("adaptive", "Adaptive: find the top captions")],
        default="uniform",
        help_text="Uniform rates every caption about equally often; adaptive (KL-LUCB, as NEXT) spends the votes "
        "on the captions that could be in the top k.",
    )
    rating_top_k = models.PositiveSmallIntegerField(
        default=10, help_text="How many of the best captions adaptive sampling looks for."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(overlap__gte=1), name="project_overlap_positive")]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class QueueUnit(models.Model):
    """Queue state of a unit (see `annotation.assignment`): an item, or one response for kinds that judge
    a single answer. Slots are held by live leases and submitted annotations; `reopened` marks a unit that
    gave a slot back, so annotators whose cursor has passed it are offered it again."""

    # Submitted annotations so far; a unit with done_count >= project.overlap is finished.
    done_count = models.PositiveIntegerField(default=0)
    taken_count = models.PositiveIntegerField(default=0)
    is_open = models.BooleanField(default=True)
    reopened = models.BooleanField(default=False)

    class Meta:
        abstract = True


class Item(QueueUnit):
    """One prompt in context: an image and a question, with the model responses to judge."""

    # No index of its own: item_external_id_unique starts with project and serves every lookup by project.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=200)
    prompt = models.TextField()
    image = models.CharField(max_length=300, blank=True, default="", help_text="Path under MEDIA_ROOT.")
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set in the transaction of every submit that changes the item's feedback; the stored `PreferencePair`s
    # are re-derived from it before a snapshot freezes (`preference_pairs_refresh_stale`), not per submit.
    pairs_stale = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique"),
        ]
        indexes = [
            models.Index(fields=["project", "id"], condition=models.Q(pairs_stale=True), name="item_pairs_stale_idx"),
            models.Index(fields=["project", "id"], condition=models.Q(is_open=True), name="item_open_idx"),
            models.Index(
                fields=["project", "id"], condition=models.Q(is_open=True, reopened=True), name="item_reopened_idx"
            ),
            models.Index(fields=["project", "done_count"], name="item_done_idx"),
            # The data browser pages a project's items in import order (cursor on id) at any depth.
            models.Index(fields=["project", "id"], name="item_project_order_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.external_id}"


class ResponseQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 — Django's signature
        """Fill each response's `project` from its item, so importers need not know the denormalization."""
        objs = list(objs)
        missing = [obj for obj in objs if obj.project_id is None]
        if missing:
            unknown = {obj.item_id for obj in missing if "item" not in obj._state.fields_cache}
            projects = dict(Item.objects.filter(pk__in=unknown).values_list("pk", "project_id")) if unknown else {}
            for obj in missing:
                cached = obj._state.fields_cache.get("item")
                obj.project_id = cached.project_id if cached is not None else projects.get(obj.item_id)
        return super().bulk_create(objs, *args, **kwargs)


class Response(QueueUnit):
    """A model's answer to an item. For corrections and ratings one response is one task, so it carries
    queue state too; `project` mirrors `item.project` (filled on save) so its queue reads one index."""

    # No index of its own: response_position_unique starts with item and serves every lookup by item.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses", db_index=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True, default="")
    meta = models.JSONField(default=dict, blank=True)

    objects = ResponseQuerySet.as_manager()

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="response_position_unique")]
        indexes = [
            models.Index(fields=["project", "id"], condition=models.Q(is_open=True), name="response_open_idx"),
            models.Index(
                fields=["project", "id"],
                condition=models.Q(is_open=True, reopened=True),
                name="response_reopened_idx",
            ),
            models.Index(fields=["project", "done_count"], name="response_done_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item} #{self.position}"

    def save(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 — Django's signature
        if self.project_id is None and self.item_id is not None:
            self.project_id = self.item.project_id
        super().save(*args, **kwargs)


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Lease expired"


class Assignment(models.Model):
    """Who holds which unit until when. One row per (unit, annotator): nobody gets a unit twice.

    `unit_id` is the queued unit: the item's id for pairwise and ranking, the response's id for
    corrections and ratings (then `response` is set too). A lease that is neither submitted nor
    renewed before `lease_expires_at` is reclaimed (`expired`) and its slot goes back to the queue.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    response = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    unit_id = models.BigIntegerField()
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    lease_expires_at = models.DateTimeField()
    # The response order shown to this annotator (response ids, left to right), randomized and recorded.
    shown_order = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Also the index behind an annotator's cursor (max unit_id) and "had this unit?" checks.
            models.UniqueConstraint(fields=["project", "annotator", "unit_id"], name="assignment_once_per_unit"),
        ]
        indexes = [
            models.Index(
                fields=["project", "annotator"],
                condition=models.Q(status="leased"),
                name="assignment_held_idx",
            ),
            models.Index(
                fields=["project", "lease_expires_at"],
                condition=models.Q(status="leased"),
                name="assignment_lease_idx",
            ),
            models.Index(fields=["project", "annotator", "submitted_at"], name="assignment_history_idx"),
            models.Index(fields=["project", "submitted_at"], name="assignment_submitted_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item} → {self.annotator} ({self.status})"


class AnnotationBase(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    assignment = models.OneToOneField(Assignment, null=True, on_delete=models.SET_NULL, related_name="+")
    client_request_id = models.CharField(max_length=64)
    time_spent_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class PairwiseChoice(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class PairwiseJudgment(AnnotationBase):
    """A choice between two responses; `response_a` is the one shown on the left."""

    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    choice = models.CharField(max_length=10, choices=PairwiseChoice.choices)
    strength = models.PositiveSmallIntegerField(default=1, help_text="1 slightly, 2 clearly better.")
    reason = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="pairwise_request_unique"),
            models.UniqueConstraint(fields=["item", "annotator"], name="pairwise_one_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"{self.choice} on {self.item_id} by {self.annotator_id}"


class Correction(AnnotationBase):
    """Hallucinated segments of one response with their replacements; no segments means "no hallucination".

    `segments` are `{"start", "end", "type", "replacement", "original"}`, sorted by start, with half-open
    code-point offsets into `response.text` (checked by `annotation.segments.correction_check`);
    `corrected_text` is the text with every segment replaced.
    """

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    segments = models.JSONField(default=list)
    corrected_text = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="correction_request_unique"),
            models.UniqueConstraint(fields=["response", "annotator"], name="correction_one_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"correction of {self.response_id} by {self.annotator_id}"


class Rating(AnnotationBase):
    """One person's rating of one response (a caption) on the project's scale."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    level = models.PositiveSmallIntegerField(help_text="Index into the project's rating levels.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="rating_request_unique"),
            models.UniqueConstraint(fields=["response", "annotator"], name="rating_one_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"rating {self.level} of {self.response_id} by {self.annotator_id}"


class ResponseRatingCount(models.Model):
    """How many people's ratings (`Rating` rows) of one response are at one level.

    Kept in the submit's transaction (one upsert, two on an amend that changes the level), so a caption's
    counts never need a scan of its ratings; `preference_pairs_rebuild` recounts them from the `Rating` rows
    of the items it re-derives (imports store ratings in bulk). Counts an import stored as aggregates
    (`Response.meta["rating_counts"]`) are not in here.
    """

    # No index of its own: rating_count_unique starts with response and serves every lookup by response.
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+", db_index=False)
    level = models.PositiveSmallIntegerField(help_text="Index into the project's rating levels.")
    n_ratings = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["response", "level"], name="rating_count_unique")]

    def __str__(self) -> str:
        return f"{self.n_ratings} at level {self.level} of {self.response_id}"


class Ranking(AnnotationBase):
    """A full order of the responses shown (`assignment.shown_order`), best first."""

    order = models.JSONField(help_text="Response ids, best first.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="ranking_request_unique"),
            models.UniqueConstraint(fields=["item", "annotator"], name="ranking_one_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"ranking of {self.item_id} by {self.annotator_id}"


def unit_model_for(project: Project) -> type[Item] | type[Response]:
    """The model whose rows are this project's tasks: items, or responses for one-answer kinds."""
    return Item if task_unit(project.kind) == UNIT_ITEM else Response


def annotation_model_for(project: Project) -> type[AnnotationBase]:
    """The table this project's annotations go to."""
    return {
        ProjectKind.PAIRWISE: PairwiseJudgment,
        ProjectKind.CORRECTION: Correction,
        ProjectKind.RATING: Rating,
        ProjectKind.RANKING: Ranking,
    }[project.kind]


class SubmitRequest(models.Model):
    """Every submit a client made, by its request id: a repeated request (double click, retry) finds its
    row here and changes nothing, including a late retry of a submit that was amended since."""

    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client_request_id = models.CharField(max_length=64)
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="submit_request_unique"),
        ]

    def __str__(self) -> str:
        return f"request {self.client_request_id} of {self.annotator_id}"


class CrowdParticipant(models.Model):
    """An anonymous rater of a public project: an inactive user (no password, cannot log in) known by a
    random token in a cookie, so their assignments and ratings live in the same tables as everyone else's."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crowd_participant")
    first_project = models.ForeignKey(Project, null=True, on_delete=models.SET_NULL, related_name="+")
    # A keyed hash of the address it came from: enough to limit sign-ups per address, useless to read back.
    address_hash = models.CharField(max_length=64, db_index=True)
    # SHA-256 of the random token in the participant's cookie (the cookie is "<user id>.<token>"); null for
    # participants from before tokens, whose signed cookies no longer authenticate.
    token_hash = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"crowd participant {self.user_id}"


class PairSource(models.TextChoices):
    CORRECTION = "correction", "Correction"
    PAIRWISE = "pairwise", "Pairwise"
    RATING = "rating", "Rating"
    RANKING = "ranking", "Ranking"
    AI = "ai", "AI feedback"


class PreferencePair(models.Model):
    """Derived from annotations by `services.preference_pairs_refresh`; never typed by hand."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairs")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="pairs")
    source = models.CharField(max_length=12, choices=PairSource.choices)
    chosen_response = models.ForeignKey(Response, null=True, on_delete=models.CASCADE, related_name="+")
    rejected_response = models.ForeignKey(Response, null=True, on_delete=models.CASCADE, related_name="+")
    chosen_text = models.TextField()
    rejected_text = models.TextField()
    margin = models.FloatField(default=1.0)
    agreement = models.FloatField(default=1.0)
    n_votes = models.PositiveIntegerField(default=1)
    chosen_spans = models.JSONField(default=list, blank=True)
    rejected_spans = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "source", "id"], name="pair_project_source_idx")]

    def __str__(self) -> str:
        return f"{self.source} pair on {self.item}"


class DatasetSnapshot(models.Model):
    """An immutable, content-hashed set of rows frozen from a project's pairs.

    The rows live in a JSONL file named by the hash; the row in this table records the filter that made
    them, their counts and what freezing them decided (`stats`). The same filter over the same pairs gives
    the same hash and the same snapshot.
    """

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="snapshots")
    content_hash = models.CharField(max_length=64)
    filters = models.JSONField(default=dict)
    stats = models.JSONField(
        default=dict,
        blank=True,
        help_text="Facts about the frozen rows: per pair source the pairs and distinct chosen/rejected answers, "
        "the AI length-balancing ratio, the [GOOD]/[BAD] threshold used.",
    )
    n_rows = models.PositiveIntegerField()
    n_train = models.PositiveIntegerField()
    n_test = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="snapshot_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"snapshot {self.pk} ({self.content_hash[:12]})"


class AIFeedback(models.Model):
    """The AI labeler's verdict on one response (RLAIF-V style): claims, yes/no questions, P(yes), score."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="ai_feedback")
    labeler_model = models.CharField(max_length=300)
    prompt_version = models.CharField(max_length=50, default="v1")
    claims = models.JSONField(default=list)
    questions = models.JSONField(default=list)
    p_yes = models.JSONField(default=list, help_text="P(yes) per claim.")
    score = models.FloatField(help_text="Answer score, e.g. minus the number of rejected claims.")
    rewrite = models.JSONField(
        default=dict, blank=True, help_text="HA-DPO rewrite from the rejected claims: {text, original_spans}, or {}."
    )
    sources = models.JSONField(
        default=list,
        blank=True,
        help_text="Per claim, where its verdict came from: logits, logprobs or parsed (empty: not recorded).",
    )
    claim_spans = models.JSONField(
        default=list,
        blank=True,
        help_text="Per claim, its [start, end) character span in the answer, or null where it is not found "
        "verbatim (empty: not recorded).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "labeler_model", "prompt_version"], name="ai_feedback_unique")
        ]

    def __str__(self) -> str:
        return f"AI feedback on {self.response} by {self.labeler_model}"


class JobKind(models.TextChoices):
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class DataJob(models.Model):
    """A long import or export run by a Celery worker: its progress, log and result file live here."""

    kind = models.CharField(max_length=10, choices=JobKind.choices)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="data_jobs")
    snapshot = models.ForeignKey(DatasetSnapshot, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True, default="")
    result_path = models.CharField(max_length=500, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"


class LabelerBackendKind(models.TextChoices):
    LOCAL = "local", "Local transformers model"
    OPENAI = "openai", "OpenAI-compatible server"


class LabelerJob(models.Model):
    """An AI labeler run over a project's responses (design.md §8) on the `labeler` Celery queue. Verdicts are
    stored as `AIFeedback` as they come; the row holds progress, log and the settings to resume with. The API
    key is never stored: the worker reads `LOUPE_LABELER_API_KEY`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labeler_jobs")
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The snapshot whose items the job labels (item_ids holds them), if started on one.",
    )  # fmt: skip
    item_ids = models.JSONField(default=list, blank=True, help_text="Items to label; empty: every item.")
    backend = models.CharField(max_length=10, choices=LabelerBackendKind.choices)
    model = models.CharField(max_length=500, help_text="Local: a folder or hub name. OpenAI: the served model.")
    base_url = models.CharField(max_length=500, blank=True, default="")
    prompt_version = models.CharField(max_length=50, default="v1")
    config = models.JSONField(default=dict, blank=True, help_text="LabelerConfig fields other than the defaults.")
    rewrite = models.BooleanField(
        default=False, help_text="Also write a corrected answer from each answer's rejected claims (HA-DPO)."
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    labelled = models.PositiveIntegerField(default=0, help_text="Answers labelled, all runs of this job.")
    done = models.PositiveIntegerField(default=0, help_text="Answers done in the last run, skipped ones included.")
    skipped = models.PositiveIntegerField(default=0, help_text="Answers found already labelled (last run).")
    questions = models.PositiveIntegerField(default=0, help_text="Questions asked of the backend, all runs.")
    total = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"labeler job {self.pk} ({self.status})"


class AISuggestionUse(models.Model):
    """Whether an annotator shown the AI labeler's suggestion answered as it suggested. The annotation itself
    is stored apart, exactly as the annotator gave it; this row only says what was suggested and if they
    took it (pairwise: chose the answer the labeler prefers; correction: marked a claim it doubted, or
    nothing when it doubted nothing), and on a correction page whether they took the labeler's rewrite
    ("Use it") and then edited it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=ProjectKind.choices)
    annotation_id = models.PositiveIntegerField(help_text="The pairwise judgment's or correction's id.")
    labeler_model = models.CharField(max_length=300)
    suggested = models.JSONField(
        default=dict, help_text="pairwise: {prefers}; correction: {doubted: spans, rewrite: text if one was offered}."
    )
    took = models.BooleanField()
    rewrite_used = models.BooleanField(
        default=False, help_text="Correction: the annotator took the labeler's suggested correction (Use it)."
    )
    rewrite_edited = models.BooleanField(
        null=True,
        blank=True,
        help_text="Whether the submitted correction differs from the rewrite taken; null if none.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "annotation_id"], name="ai_suggestion_use_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.annotation_id}: took={self.took}"


# --- review ---


class ReviewDecision(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"


class AnnotationReview(models.Model):
    """A reviewer's decision on one annotation: one row per annotation, updated when it is reviewed again
    (the latest decision wins). Annotations live in one table per kind, so the annotation is named by
    `kind` and `annotation_id` (as in `AISuggestionUse`). An edit never changes the annotation itself:
    `edited` holds the reviewer's version (the fields of the kind, as the submit stores them), which
    the pairs and snapshots use in its place. `annotation_updated_at` is the version of the annotation
    that was reviewed: an annotator who changes their answer afterwards makes the review stale."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=20, choices=ProjectKind.choices)
    annotation_id = models.PositiveIntegerField(help_text="The id of the judgment, correction, rating or ranking.")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", help_text="Whose work was reviewed."
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices)
    comment = models.TextField(blank=True, default="")
    edited = models.JSONField(
        default=dict, blank=True, help_text="The reviewer's version of the answer (decision edited), else {}."
    )
    annotation_updated_at = models.DateTimeField(help_text="The annotation's updated_at when it was reviewed.")
    client_request_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "annotation_id"], name="review_one_per_annotation"),
            models.UniqueConstraint(fields=["reviewer", "client_request_id"], name="review_request_unique"),
        ]
        indexes = [
            models.Index(fields=["project", "annotator", "updated_at"], name="review_annotator_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.kind} {self.annotation_id} by {self.reviewer_id}"


# --- gold and trust ---


class GoldAnswer(models.Model):
    """The known answer of a gold task: a unit (see `annotation.assignment`) served to annotators like any
    other, whose answers measure them (`annotation.gold_rules`) instead of training models.

    `unit_id` is the queued unit, as in `Assignment`: the item's id for pairwise and ranking, the response's
    id for corrections and ratings (then `response` is set too). `answer` is normalized by
    `gold_rules.gold_answer_check`; it never leaves the server to annotators. Gold units are not in the
    ordinary queue (so they take no slot of the overlap) and their items are left out of every snapshot.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    unit_id = models.BigIntegerField()
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="gold_answers")
    response = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    answer = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "unit_id"], name="gold_answer_unique")]

    def __str__(self) -> str:
        return f"gold {self.unit_id} of {self.project_id}"
