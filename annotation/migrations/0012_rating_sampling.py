# Written by hand (parallel work on 0010 and 0011): the rating projects' caption sampling settings.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0011_review")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="rating_sampling",
            field=models.CharField(
                choices=[
                    ("uniform", "Uniform: least-rated caption first"),
                    ("adaptive", "Adaptive: find the top captions"),
                ],
                default="uniform",
                help_text="Uniform rates every caption about equally often; adaptive (KL-LUCB, as NEXT) spends the "
                "votes on the captions that could be in the top k.",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="rating_top_k",
            field=models.PositiveSmallIntegerField(
                default=10, help_text="How many of the best captions adaptive sampling looks for."
            ),
        ),
    ]
