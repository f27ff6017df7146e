"""Issue 16 (scale): on PostgreSQL an import's items and responses go in with COPY, inside the import's one
transaction: a file refused on a late line keeps nothing of the rows already copied."""

import json

import pytest
from django.db import connection

from annotation import services
from annotation.models import Item, Response
from annotation.services import imports
from loupe.errors import ApplicationError

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]


def _lines(n: int, *, bad_at: int | None = None) -> str:
    rows = []
    for i in range(n):
        text = 'tab\there, back\\slash, new\nline, quote " é' if i % 2 else f"answer {i}"
        row = {
            "external_id": f"c{i}",
            "prompt": f"Q {i}?",
            "responses": [{"text": text, "model": "m-é"}, {"text": "other"}],
            "meta": {"source": "copy", "n": i, "nested": {"list": [1, 2.5, None, "x\ty"]}},
        }
        if i == bad_at:
            row["responses"] = "not a list"
        rows.append(json.dumps(row))
    return "\n".join(rows) + "\n"


@pytest.fixture
def copies(monkeypatch):
    seen = []
    original = imports._rows_copy

    def spy(connection, table, columns, fields, rows):
        seen.append((table, len(rows)))
        return original(connection, table, columns, fields, rows)

    monkeypatch.setattr(imports, "_rows_copy", spy)
    return seen


def test_items_and_responses_are_copied_with_their_text_intact(pairwise_project, tmp_path, copies):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    path = tmp_path / "items.jsonl"
    path.write_text(_lines(250))
    report = services.items_import(project=pairwise_project, path=path, batch_size=100)
    assert report.created == 250
    assert [table for table, _n in copies].count(Item._meta.db_table) == 3  # batches of 100, 100, 50
    assert sum(n for table, n in copies if table == Response._meta.db_table) == 500
    stored = Response.objects.get(item__external_id="c1", position=0).text
    assert stored == 'tab\there, back\\slash, new\nline, quote " é'


def test_a_late_bad_line_keeps_nothing_of_the_batches_already_copied(pairwise_project, tmp_path, copies):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    path = tmp_path / "items.jsonl"
    path.write_text(_lines(250, bad_at=230))
    with pytest.raises(ApplicationError) as refused:
        services.items_import(project=pairwise_project, path=path, batch_size=100)
    assert refused.value.extra["line"] == 231
    assert copies, "two batches were copied before the bad line"
    assert not Item.objects.exists() and not Response.objects.exists()


def test_every_kind_of_column_comes_back_as_it_went_in(pairwise_project, tmp_path, copies):
    """Binary COPY: JSON stays JSON (an object, not a string holding it), defaults are the model's, dates
    are set, and the rows read back through the ORM equal the file's."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    path = tmp_path / "items.jsonl"
    path.write_text(_lines(4))
    services.items_import(project=pairwise_project, path=path)
    item = Item.objects.get(external_id="c3")
    assert item.meta == {"source": "copy", "n": 3, "nested": {"list": [1, 2.5, None, "x\ty"]}}
    assert Item.objects.filter(meta__nested__list__1=2.5).count() == 4  # queried as JSON by the server
    assert (item.done_count, item.taken_count, item.is_open, item.pairs_stale) == (0, 0, True, False)
    assert item.created_at is not None
    response = Response.objects.get(item=item, position=0)
    assert (response.model_name, response.text) == ("m-é", 'tab\there, back\\slash, new\nline, quote " é')
    assert isinstance(response.meta, dict)
