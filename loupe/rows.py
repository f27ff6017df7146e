"""Model instances from raw SQL and back, for the few reads and inserts on every task request.

`Model.objects.raw` re-derives, on every call, which column is which field, the model's init order and each
field's database converters: ~0.25 ms per query, more than the query itself, and a next → submit round trip
runs five of them. `instances` works them out once per (model, columns) and connection, then only converts
values and builds the instances (`Model.from_db`, as the ORM does). Columns that are not fields of the model
become attributes, as with `raw`; fields the query does not select are deferred (loaded when read).
`insert` stores a new instance with one prepared INSERT, for the same reason (`Model.objects.create` spends
~0.45 ms in the query compiler per row). `id_list` passes a long list of ids to an `__in` filter as one parameter.
"""

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model
from django.db.models.base import DEFERRED
from django.db.models.expressions import RawSQL

_M = TypeVar("_M", bound=Model)


def _cache(db: Any, name: str) -> dict:
    """A dict kept on this thread's connection (through `connection`'s proxy, which is shared by every
    thread): converters may be bound to the connection they were made for."""
    cache = getattr(db, name, None)
    if cache is None:
        cache = {}
        setattr(db, name, cache)
    return cache


class _Plan:
    """How a row of the given columns becomes an instance of the model (for one connection)."""

    def __init__(self, model: type[Model], columns: tuple[str, ...]) -> None:
        by_column = {}
        for field in model._meta.concrete_fields:
            by_column[field.column] = field
            by_column.setdefault(field.attname, field)
        index = {name: i for i, name in enumerate(columns)}
        # Per concrete field, in the model's init order: the row position of its value, or None (deferred).
        self.field_positions = [index.get(f.column, index.get(f.attname)) for f in model._meta.concrete_fields]
        fields = model._meta.concrete_fields
        self.field_names = {f.attname for f, at in zip(fields, self.field_positions, strict=True) if at is not None}
        self.extras = [(i, name) for i, name in enumerate(columns) if name not in by_column]
        self.converters = []
        for i, name in enumerate(columns):
            field = by_column.get(name)
            if field is None:
                continue
            expression = field.get_col(model._meta.db_table)
            functions = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
            if functions:
                self.converters.append((i, functions, expression))


def instances(model: type[_M], query: str, params: list[Any]) -> list[_M]:
    """The rows of `query` (a SELECT of `model`'s table, any extra columns) as instances of `model`."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        columns = tuple(column[0] for column in cursor.description)
        rows = cursor.fetchall()
    if not rows:
        return []
    plans = _cache(connection, "_loupe_row_plans")
    plan = plans.get((model, columns))
    if plan is None:
        plan = plans[(model, columns)] = _Plan(model, columns)
    found = []
    for row in rows:
        values = list(row)
        for i, functions, expression in plan.converters:
            for function in functions:
                values[i] = function(values[i], expression, connection)
        instance = model.from_db(
            connection.alias,
            plan.field_names,
            [DEFERRED if at is None else values[at] for at in plan.field_positions],
        )
        for i, name in plan.extras:
            setattr(instance, name, values[i])
        found.append(instance)
    return found


def instance(model: type[_M], query: str, params: list[Any]) -> _M | None:
    """The first row of `query` as an instance of `model`, or None."""
    found = instances(model, query, params)
    return found[0] if found else None


class _Insert:
    """One model's INSERT statement for this connection: every concrete field but an automatic primary key."""

    def __init__(self, model: type[Model]) -> None:
        meta = model._meta
        self.fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        marks = ", ".join(["%s"] * len(self.fields))
        table = connection.ops.quote_name(meta.db_table)
        self.query = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 — names from the model
        self.returning = meta.auto_field is not None and connection.features.can_return_columns_from_insert
        if self.returning:
            self.query += f" RETURNING {connection.ops.quote_name(meta.auto_field.column)}"


def insert(instance: Model) -> None:
    """INSERT a new instance (its primary key is set afterwards), with the values `save()` would store:
    each field's `pre_save` (auto_now, defaults) and database preparation. Unlike `save()` it sends no
    `pre_save`/`post_save` signals and calls no overridden `save()`: use it only for models without them."""
    statements = _cache(connection, "_loupe_inserts")
    model = type(instance)
    statement = statements.get(model)
    if statement is None:
        statement = statements[model] = _Insert(model)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in statement.fields]
    with connection.cursor() as cursor:
        cursor.execute(statement.query, values)
        auto_field = model._meta.auto_field
        if auto_field is not None:
            pk = cursor.fetchone()[0] if statement.returning else cursor.lastrowid
            setattr(instance, auto_field.attname, pk)
    instance._state.adding = False
    instance._state.db = connection.alias


def id_list(ids: Iterable[int]) -> RawSQL:
    """The right-hand side of an `__in` filter on many ids, as one parameter (`filter(item_id__in=id_list(ids))`).

    Django prepares and compiles every value of a plain `__in` list one by one (~20 µs each with 10,000 of
    them, more than the query itself); here the whole list is one JSON array (SQLite's `json_each`) or one
    array parameter (PostgreSQL's `unnest`), and no query nears the database's limit on parameters.
    """
    text = ",".join(str(int(i)) for i in ids)
    if connection.vendor == "postgresql":
        # An array literal as text: psycopg's dumper of a Python list checks every element with a regex.
        return RawSQL("SELECT unnest(%s::bigint[])", ["{" + text + "}"])
    return RawSQL("SELECT value FROM json_each(%s)", ["[" + text + "]"])
