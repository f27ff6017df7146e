# Written by hand (issue 17, review): the reviewer's accept/edit/reject decisions.
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0010_gold_trust"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AnnotationReview",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("pairwise", "Pairwise preference"),
                            ("correction", "Segment-level correction"),
                            ("rating", "Crowd rating"),
                            ("ranking", "Ranking"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "annotation_id",
                    models.PositiveIntegerField(help_text="The id of the judgment, correction, rating or ranking."),
                ),
                (
                    "decision",
                    models.CharField(
                        choices=[("accepted", "Accepted"), ("edited", "Edited"), ("rejected", "Rejected")],
                        max_length=10,
                    ),
                ),
                ("comment", models.TextField(blank=True, default="")),
                (
                    "edited",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="The reviewer's version of the answer (decision edited), else {}.",
                    ),
                ),
                (
                    "annotation_updated_at",
                    models.DateTimeField(help_text="The annotation's updated_at when it was reviewed."),
                ),
                ("client_request_id", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "annotator",
                    models.ForeignKey(
                        help_text="Whose work was reviewed.",
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.project",
                    ),
                ),
                (
                    "reviewer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("kind", "annotation_id"), name="review_one_per_annotation"),
                    models.UniqueConstraint(fields=("reviewer", "client_request_id"), name="review_request_unique"),
                ],
                "indexes": [
                    models.Index(fields=["project", "annotator", "updated_at"], name="review_annotator_idx"),
                ],
            },
        ),
    ]
