"""A segment's filter compiled to one parameterised SQL boolean expression.

The stable interface (fan-out, export and the subscriber lists use it)::

    sql, params = compile_filter(node, alias="s", first_param=4)
    statement = with_condition(Q["some_query"], sql)   # replaces CONDITION_SLOT once
    await conn.fetch(statement, a, b, c, *params)

``node`` is a parsed filter (:func:`herald.segments.domain.parse_filter`); the result is
an expression over ``<alias>``, an alias of ``subscriptions`` in the caller's statement,
with every value from the filter a ``$n`` parameter numbered from ``first_param`` (the
caller's own parameters come first) and cast to its type, so the statement prepares with
no unknown parameter. Attribute names are values too (``s.attributes #> $5::text[]``):
nothing a user wrote is ever spliced into the SQL text. A named statement in a
``queries.sql`` holds :data:`CONDITION_SLOT` where the condition goes; as it stands (``TRUE``)
it prepares and means "everyone", which is how ``tests/integration/test_sql_statements.py``
checks it.

The expression is never NULL (a missing attribute makes a comparison false, so ``not``
is its exact complement) and never raises: a comparison first checks the attribute's JSON
type with ``jsonb_typeof`` and then compares without a cast that could fail — numbers
and booleans as ``jsonb`` (numeric order), strings and dates as text in code-point order
(``COLLATE "C"``; a date is a string starting ``YYYY-MM-DD``, compared on those ten
characters), so ``AND`` needs no evaluation order. A list condition is a correlated
``EXISTS`` on ``list_memberships``, aliased ``segment_m`` / ``segment_l``, an engagement
condition an ``IN`` over ``engagement_opens`` or ``engagement_clicks`` and ``deliveries``,
aliased ``segment_e`` / ``segment_d``: callers must not use those aliases.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from herald.segments.domain import (
    All,
    AnyOf,
    Attribute,
    CreatedAfter,
    CreatedBefore,
    CreatedWithin,
    EmailDomain,
    Engaged,
    Engagement,
    Filter,
    InList,
    Not,
    Op,
    Scalar,
    StatusIn,
    ValueType,
)

# Where a named statement takes the condition: ``WHERE … AND /* segment */ TRUE``.
CONDITION_SLOT = "/* segment */ TRUE"
_ALIAS = re.compile(r"[a-z_][a-z0-9_]{0,30}")
_COMPARE = {Op.EQ: "=", Op.NE: "<>", Op.LT: "<", Op.LTE: "<=", Op.GT: ">", Op.GTE: ">="}
_DATE_PREFIX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def compile_filter(node: Filter, *, alias: str, first_param: int) -> tuple[str, list[object]]:
    """``node`` as a SQL boolean expression over ``alias`` and its parameters, numbered
    ``$first_param``, ``$first_param + 1`` …"""
    if not _ALIAS.fullmatch(alias) or alias.startswith("segment_"):
        raise ValueError(f"not a usable table alias: {alias!r}")
    if first_param < 1:
        raise ValueError("parameters are numbered from 1")
    compiler = _Compiler(alias, first_param)
    return compiler.expression(node), compiler.params


def with_condition(statement: str, condition: str) -> str:
    """``statement`` (a named query holding :data:`CONDITION_SLOT` once) with the slot
    replaced by ``condition``."""
    if statement.count(CONDITION_SLOT) != 1:
        raise ValueError(f"the statement must hold {CONDITION_SLOT!r} exactly once")
    return statement.replace(CONDITION_SLOT, f"({condition})")


@dataclass
class _Compiler:
    alias: str
    first_param: int
    params: list[object] = field(default_factory=list)

    def param(self, value: object, cast: str) -> str:
        self.params.append(value)
        return f"${self.first_param + len(self.params) - 1}::{cast}"

    def expression(self, node: Filter) -> str:  # noqa: PLR0911 - one return per kind of node
        a = self.alias
        match node:
            case All(parts):
                return "(" + " AND ".join(self.expression(p) for p in parts) + ")"
            case AnyOf(parts):
                return "(" + " OR ".join(self.expression(p) for p in parts) + ")"
            case Not(part):
                return f"(NOT {self.expression(part)})"
            case StatusIn(statuses):
                return f"({a}.status = ANY({self.param(list(statuses), 'text[]')}))"
            case InList(slug, status):
                # The list's id first (an InitPlan): a join to lists by slug would hide
                # which list it is from the planner, which then expects a few members.
                return (
                    "(EXISTS (SELECT 1 FROM list_memberships AS segment_m"
                    f" WHERE segment_m.subscriber_id = {a}.id"
                    " AND segment_m.list_id = (SELECT segment_l.id FROM lists AS segment_l"
                    f" WHERE segment_l.slug = {self.param(slug, 'text')})"
                    f" AND segment_m.status = {self.param(status, 'text')}))"
                )
            case CreatedBefore(at):
                return f"({a}.created_at < {self.param(at, 'timestamptz')})"
            case CreatedAfter(at):
                return f"({a}.created_at > {self.param(at, 'timestamptz')})"
            case CreatedWithin(days):
                return (
                    f"({a}.created_at >= now() - make_interval(days => {self.param(days, 'int')}))"
                )
            case EmailDomain(domain):
                return (
                    f"coalesce(lower(substring({a}.email from '@([^@]*)$'))"
                    f" = {self.param(domain, 'text')}, false)"
                )
            case Engaged(action, days):
                return self.engaged(action, days)
            case Attribute():
                return self.attribute(node)
        raise AssertionError(f"not a filter: {node!r}")

    def engaged(self, action: Engagement, days: int) -> str:
        """The readers with a delivery a person opened (clicked in) lately: a semi-join
        (``IN``, a hashed subplan) over the window's opens or clicks, which stay far fewer
        than the subscribers. Never NULL: the subquery holds no NULL."""
        table, at = (
            ("engagement_opens", "opened_at")
            if action is Engagement.OPENED
            else ("engagement_clicks", "last_at")
        )
        return (
            f"({self.alias}.id IN (SELECT segment_d.subscriber_id FROM {table} AS segment_e"
            " JOIN deliveries AS segment_d ON segment_d.id = segment_e.delivery_id"
            f" WHERE NOT segment_e.machine AND segment_e.{at} >= now()"
            f" - make_interval(days => {self.param(days, 'int')})"
            " AND segment_d.subscriber_id IS NOT NULL))"
        )

    def attribute(self, node: Attribute) -> str:
        x = f"({self.alias}.attributes #> {self.param(list(node.path), 'text[]')})"
        if node.type is None:
            return f"coalesce(jsonb_typeof({x}) <> 'null', false)"
        text = f"({x} #>> '{{}}')"
        if node.type is ValueType.DATE:
            guard = f"jsonb_typeof({x}) = 'string' AND {text} ~ '{_DATE_PREFIX}'"
            text = f"left({text}, 10)"
        else:
            json_type = "string" if node.type is ValueType.STRING else node.type.value
            guard = f"jsonb_typeof({x}) = '{json_type}'"
        if node.op is Op.EXISTS:
            return f"coalesce({guard}, false)"
        typed = f"coalesce({guard} AND {self.compare(node, x, text)}, false)"
        if node.op is Op.EQ and node.type is not ValueType.DATE:
            # Implied by the typed equality (jsonb containment compares scalars the same
            # way), and what a GIN index on attributes (jsonb_path_ops) can find.
            return (
                f"({self.alias}.attributes @> {self.param(_contained(node), 'jsonb')} AND {typed})"
            )
        return typed

    def compare(self, node: Attribute, x: str, text: str) -> str:
        op, value = node.op, node.value
        textual = node.type in (ValueType.STRING, ValueType.DATE)
        if op is Op.IN:
            assert isinstance(value, tuple)
            if textual:
                return f"{text} = ANY({self.param([_text(v) for v in value], 'text[]')})"
            items = "[" + ",".join(_json(v) for v in value) + "]"
            return f"{self.param(items, 'jsonb')} @> jsonb_build_array({x})"
        assert value is not None
        assert not isinstance(value, tuple)
        if op is Op.CONTAINS:
            return f"strpos({text}, {self.param(_text(value), 'text')}) > 0"
        if op is Op.STARTS_WITH:
            return f"starts_with({text}, {self.param(_text(value), 'text')})"
        if textual:
            collate = ' COLLATE "C"' if op not in (Op.EQ, Op.NE) else ""
            return f"{text} {_COMPARE[op]} {self.param(_text(value), 'text')}{collate}"
        return f"{x} {_COMPARE[op]} {self.param(_json(value), 'jsonb')}"


def _contained(node: Attribute) -> str:
    """``{"a": {"b": value}}`` for the path ``a.b``: the object an equal value makes."""
    assert node.value is not None
    assert not isinstance(node.value, tuple)
    inner = _json(node.value)
    for key in reversed(node.path):
        inner = "{" + json.dumps(key) + ":" + inner + "}"
    return inner


def _text(value: Scalar) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _json(value: Scalar) -> str:
    """``value`` as JSON text; a number digit for digit (no float rounding)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(_text(value) if isinstance(value, date) else value)
