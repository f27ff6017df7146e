# Gold tasks and trust (issue 17): the project's gold rate and the known answers of gold units. Written by hand
# (parallel work fills 0011 and 0012).
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0009_rating_counts_pairs_stale")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="gold_rate",
            field=models.FloatField(
                default=0.0, help_text="Fraction of the tasks served that are gold tasks (known answers), 0 to 1."
            ),
        ),
        migrations.CreateModel(
            name="GoldAnswer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("unit_id", models.BigIntegerField()),
                ("answer", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="gold_answers",
                        to="annotation.item",
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
                    "response",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.response",
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("project", "unit_id"), name="gold_answer_unique")],
            },
        ),
    ]
