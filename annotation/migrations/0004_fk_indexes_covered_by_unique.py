# The single-column indexes Django makes for these two foreign keys duplicate the leading column of a unique
# constraint (item_external_id_unique on (project, external_id), response_position_unique on (item, position)),
# which serves every lookup by project or item. Dropping them makes each imported row cheaper to store. The
# database side is a plain DROP INDEX (Django's AlterField would rebuild both tables on SQLite); the index names
# are the ones Django gave them in 0001, the same on SQLite and PostgreSQL.

import django.db.models.deletion
from django.db import migrations, models

ITEM_PROJECT_INDEX = "annotation_item_project_id_2466b61c"
RESPONSE_ITEM_INDEX = "annotation_response_item_id_00e08395"


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0003_queue_units_crowd"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{ITEM_PROJECT_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{ITEM_PROJECT_INDEX}" ON "annotation_item" ("project_id")',
                ),
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{RESPONSE_ITEM_INDEX}"',
                    reverse_sql=f'CREATE INDEX "{RESPONSE_ITEM_INDEX}" ON "annotation_response" ("item_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="item",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="annotation.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="response",
                    name="item",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="responses",
                        to="annotation.item",
                    ),
                ),
            ],
        ),
    ]
