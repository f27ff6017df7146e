# Placeholder filled in by the work on this migration's subject; kept in the chain so parallel work can depend on it.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotation", "0009_rating_counts_pairs_stale")]

    operations = []
