from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0007_ai_feedback_sources_spans_rewrite_use"),
    ]

    operations = [
        migrations.AddField(
            model_name="crowdparticipant",
            name="token_hash",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
