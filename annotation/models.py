"""Projects, items and model responses, the annotation queue, annotations, and the preference data derived
from them (design.md §4). Models hold fields and constraints; rules live in `services.py`."""

from django.conf import settings
from django.db import models

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


class Item(models.Model):
    """One prompt in context: an image and a question, with the model responses to judge."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200)
    prompt = models.TextField()
    image = models.CharField(max_length=300, blank=True, default="", help_text="Path under MEDIA_ROOT.")
    meta = models.JSONField(default=dict, blank=True)
    # Submitted annotations so far; an item with done_count >= project.overlap leaves the queue.
    done_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique"),
        ]
        indexes = [models.Index(fields=["project", "done_count", "id"], name="item_queue_idx")]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.external_id}"


class Response(models.Model):
    """A model's answer to an item."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True, default="")
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["item_id", "position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="response_position_unique")]

    def __str__(self) -> str:
        return f"{self.item} #{self.position}"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"


class Assignment(models.Model):
    """Who holds which item until when. One row per (item, annotator): nobody gets an item twice."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    lease_expires_at = models.DateTimeField()
    # The response order shown to this annotator (response ids, left to right), randomized and recorded.
    shown_order = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="assignment_unique")]
        indexes = [models.Index(fields=["item", "status", "lease_expires_at"], name="assignment_active_idx")]

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


class Correction(AnnotationBase):
    """Hallucinated segments of one response with their replacements; no segments means "no hallucination"."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    segments = models.JSONField(default=list)
    corrected_text = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="correction_request_unique"),
            models.UniqueConstraint(fields=["item", "annotator"], name="correction_one_per_annotator"),
        ]


class Rating(AnnotationBase):
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    level = models.PositiveSmallIntegerField(help_text="Index into the project's rating levels.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="rating_request_unique"),
            models.UniqueConstraint(fields=["item", "annotator"], name="rating_one_per_annotator"),
        ]


class Ranking(AnnotationBase):
    order = models.JSONField(help_text="Response ids, best first.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_request_id"], name="ranking_request_unique"),
            models.UniqueConstraint(fields=["item", "annotator"], name="ranking_one_per_annotator"),
        ]


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
    them and their counts. The same filter over the same pairs gives the same hash and the same snapshot.
    """

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="snapshots")
    content_hash = models.CharField(max_length=64)
    filters = models.JSONField(default=dict)
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["response", "labeler_model", "prompt_version"], name="ai_feedback_unique"
            )
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
