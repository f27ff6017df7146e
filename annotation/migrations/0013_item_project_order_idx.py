# The data browser's import-order listing: a cursor on id within one project, fast at any depth.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0012_rating_sampling")]

    operations = [
        migrations.AddIndex(
            model_name="item",
            index=models.Index(fields=["project", "id"], name="item_project_order_idx"),
        ),
    ]
