"""Database expressions every app's background jobs share."""

from django.db.models import F, TextField, Value
from django.db.models.functions import Concat


def log_appended(text: str) -> Concat:
    """A job row's `log` with `text` appended, computed in the database so concurrent writers never lose a line
    (`F("log") + text` would add numbers on SQLite). Use as `Model.objects.filter(...).update(log=log_appended(t))`."""
    return Concat(F("log"), Value(text), output_field=TextField())
