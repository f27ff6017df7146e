"""`loupe.rows` (issue 15): instances built from raw rows, and inserted with one prepared statement, equal what
the ORM reads and writes: JSON, dates, booleans, foreign keys, extra columns, deferred fields."""

import pytest
from django.db import connection

from annotation.models import Assignment, Item, Project, Response
from loupe import rows

pytestmark = pytest.mark.django_db


PROJECTS = connection.ops.quote_name(Project._meta.db_table)


def _values(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_instances_read_what_the_orm_reads(researcher):
    project = Project.objects.create(
        slug="rows", name="Rows", kind="rating", rating_levels=["meh", "ok", "wow"], visibility="public", overlap=3
    )
    by_slug = f"SELECT p.*, 7 AS lucky FROM {PROJECTS} p WHERE p.slug = %s"  # noqa: S608
    found = rows.instance(Project, by_slug, ["rows"])
    assert _values(found) == _values(Project.objects.get(pk=project.pk))
    assert found.rating_levels == ["meh", "ok", "wow"] and found.created_at.tzinfo is not None
    assert found.lucky == 7 and not found._state.adding
    assert rows.instance(Project, by_slug, ["none"]) is None

    two_columns = f"SELECT id, slug FROM {PROJECTS} WHERE slug = %s"  # noqa: S608
    partial = rows.instance(Project, two_columns, ["rows"])
    assert partial.get_deferred_fields() >= {"name", "rating_levels"}
    assert partial.rating_levels == ["meh", "ok", "wow"]  # loaded when read


def test_insert_stores_what_create_stores(researcher):
    project = Project.objects.create(slug="rows-insert", kind="pairwise")
    item = Item.objects.create(project=project, external_id="i", prompt="p")
    responses = [Response.objects.create(item=item, position=k, text=f"r{k}") for k in range(2)]
    assignment = Assignment(
        project=project,
        item_id=item.pk,
        unit_id=item.pk,
        annotator=researcher,
        lease_expires_at="2030-01-01T00:00:00Z",
        shown_order=[responses[1].pk, responses[0].pk],
    )
    rows.insert(assignment)
    assert assignment.pk is not None and not assignment._state.adding
    stored = Assignment.objects.get(pk=assignment.pk)
    assert stored.shown_order == [responses[1].pk, responses[0].pk]
    assert stored.status == "leased" and stored.created_at is not None
    assert stored.created_at == assignment.created_at  # auto_now_add set on the instance, as save() does
