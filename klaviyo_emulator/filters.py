"""Klaviyo's ``filter`` query grammar: parsing, validation against ``x-klaviyo-filters`` and evaluation.

Grammar (per developers.klaviyo.com/en/docs/filtering_)::

    filter     := expr ("," expr)*            # implicit AND
    expr       := "and(" expr ("," expr)* ")" | op "(" field ["," value] ")"
    value      := quoted string ('...' or "...") | unquoted ISO-8601 datetime | number
                | true | false | null | "[" value ("," value)* "]"

Quoted datetimes are rejected, as Klaviyo does. Only AND combination is supported.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .spec import FilterField

OPERATORS = frozenset(
    {
        "equals",
        "less-than",
        "less-or-equal",
        "greater-than",
        "greater-or-equal",
        "contains",
        "contains-any",
        "contains-all",
        "starts-with",
        "ends-with",
        "any",
        "has",
    }
)

_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
_NUMBER_RE = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_BARE_RE = re.compile(r"[^,()\[\]\s'\"]+")


class FilterError(ValueError):
    """Invalid filter expression (mapped to a 400 with source.parameter=filter)."""


@dataclass(frozen=True)
class Condition:
    op: str
    field: str
    value: Any  # str | float | int | bool | datetime | None | list[...]
    is_list: bool
    has_value: bool


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 datetime; naive values are UTC. Raises ValueError."""
    t = text.strip()
    if not _DATETIME_RE.match(t):
        raise ValueError(f"not a datetime: {text!r}")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.search(r"([+-])(\d{2})(\d{2})$", t)
    if m and ":" not in t[-5:]:
        t = t[: m.start()] + f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    dt = datetime.fromisoformat(t.replace(" ", "T", 1))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def error(self, msg: str) -> FilterError:
        return FilterError(f"Invalid filter provided: {msg} (at position {self.i} of {self.s!r})")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}")
        self.i += 1

    def word(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z0-9_.$\-]+").match(self.s, self.i)
        if not m:
            raise self.error("expected a name")
        self.i = m.end()
        return m.group(0)

    def parse(self) -> list[Condition]:
        if not self.s.strip():
            raise self.error("empty filter")
        conds = self.expr_list()
        self.ws()
        if self.i != len(self.s):
            raise self.error("unexpected trailing characters")
        return conds

    def expr_list(self) -> list[Condition]:
        out = self.expr()
        while self.peek() == ",":
            self.i += 1
            out.extend(self.expr())
        return out

    def expr(self) -> list[Condition]:
        op = self.word()
        self.expect("(")
        if op == "and":
            conds = self.expr_list()
            self.expect(")")
            return conds
        if op in ("or", "not"):
            raise self.error(f"operator {op!r} is not supported")
        if op not in OPERATORS:
            raise self.error(f"unknown operator {op!r}")
        fld = self.word()
        if self.peek() == ")":
            self.i += 1
            return [Condition(op, fld, None, False, False)]
        self.expect(",")
        if self.peek() == "[":
            self.i += 1
            items: list[Any] = []
            if self.peek() != "]":
                items.append(self.scalar())
                while self.peek() == ",":
                    self.i += 1
                    items.append(self.scalar())
            self.expect("]")
            value: Any = items
            is_list = True
        else:
            value = self.scalar()
            is_list = False
        self.expect(")")
        return [Condition(op, fld, value, is_list, True)]

    def scalar(self) -> Any:
        ch = self.peek()
        if ch in ("'", '"'):
            return self.quoted(ch)
        m = _BARE_RE.match(self.s, self.i)
        if not m:
            raise self.error("expected a value")
        # Datetimes may contain ':' '+' '.' and a space ("2023-08-15 12:30:00Z").
        text = m.group(0)
        end = m.end()
        sp = re.compile(r" \d{2}:\d{2}[^,()\[\]\s]*").match(self.s, end)
        if sp and re.match(r"^\d{4}-\d{2}-\d{2}$", text):
            text += sp.group(0)
            end = sp.end()
        self.i = end
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if _NUMBER_RE.match(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        try:
            return parse_datetime(text)
        except ValueError:
            raise self.error(f"unquoted value {text!r} must be a quoted string") from None

    def quoted(self, quote: str) -> _QuotedStr:
        self.i += 1
        buf: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                buf.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c == quote:
                self.i += 1
                return _QuotedStr("".join(buf))
            buf.append(c)
            self.i += 1
        raise self.error("unterminated string")


class _QuotedStr(str):
    """Marks a value that was written in quotes."""


def parse_filter(text: str) -> list[Condition]:
    """Parse a filter string into a flat list of AND-ed conditions (raises FilterError)."""
    return _Parser(text).parse()


def _check_value(fld: FilterField, cond: Condition, value: Any) -> Any:
    vt = fld.value_type
    if vt == "datetime":
        if isinstance(value, _QuotedStr):
            raise FilterError(
                f"Invalid filter provided: datetime values must not be quoted ({cond.op}({cond.field},...))"
            )
        if not isinstance(value, datetime):
            raise FilterError(f"Invalid filter provided: '{cond.field}' expects a datetime")
        return value
    if vt == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FilterError(f"Invalid filter provided: '{cond.field}' expects a number")
        return value
    if vt == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FilterError(f"Invalid filter provided: '{cond.field}' expects an integer")
        return value
    if vt == "boolean":
        if not isinstance(value, bool):
            raise FilterError(f"Invalid filter provided: '{cond.field}' expects true or false")
        return value
    # string
    if not isinstance(value, _QuotedStr):
        raise FilterError(f"Invalid filter provided: '{cond.field}' expects a quoted string")
    if fld.enum is not None and str(value) not in fld.enum:
        raise FilterError(
            f"Invalid filter provided: '{value}' is not a valid value for '{cond.field}'; "
            f"expected one of {', '.join(map(str, fld.enum))}"
        )
    return str(value)


def validate(conds: Iterable[Condition], allowed: dict[str, FilterField]) -> list[Condition]:
    """Check each condition against the operation's ``x-klaviyo-filters``; return typed conditions."""
    out: list[Condition] = []
    for c in conds:
        fld = allowed.get(c.field)
        if fld is None:
            raise FilterError(f"Invalid filter provided: filtering on '{c.field}' is not supported")
        if not c.has_value:
            if c.op not in fld.none:
                raise FilterError(
                    f"Invalid filter provided: operator '{c.op}' requires a value for '{c.field}'"
                    if c.op != "has"
                    else f"Invalid filter provided: operator 'has' is not supported for '{c.field}'"
                )
            out.append(c)
            continue
        ops = fld.list if c.is_list else fld.single
        if c.op not in ops:
            form = "a list" if c.is_list else "a single value"
            raise FilterError(
                f"Invalid filter provided: operator '{c.op}' with {form} is not supported for "
                f"field '{c.field}'"
            )
        if c.is_list:
            if not c.value:
                raise FilterError(f"Invalid filter provided: empty list for '{c.field}'")
            value: Any = [_check_value(fld, c, v) for v in c.value]
        else:
            value = _check_value(fld, c, c.value)
        out.append(Condition(c.op, c.field, value, c.is_list, True))
    return out


def first_future_datetime(conds: Iterable[Condition], now: datetime) -> tuple[Condition, datetime] | None:
    """The first datetime value later than ``now`` in typed conditions, if any.

    Klaviyo answers such a filter with 400 "End date may not be in the future: ..." whatever the
    operator (seen for ``greater-than(updated_at, <future>)`` on /api/campaigns and
    ``greater-than(datetime, <future>)`` on /api/events in public issue reports of other Klaviyo
    connectors); its clock is the wall clock, not the account's history.
    """
    for c in conds:
        values = c.value if c.is_list else [c.value]
        for value in values:
            if isinstance(value, datetime) and value > now:
                return c, value
    return None


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "equals": operator.eq,
    "any": lambda actual, expected: actual in expected,
    "greater-than": operator.gt,
    "greater-or-equal": operator.ge,
    "less-than": operator.lt,
    "less-or-equal": operator.le,
    "contains": lambda actual, expected: str(expected) in str(actual),
    "starts-with": lambda actual, expected: str(actual).startswith(str(expected)),
    "ends-with": lambda actual, expected: str(actual).endswith(str(expected)),
    "contains-any": lambda actual, expected: any(str(e) in str(actual) for e in expected),
    "contains-all": lambda actual, expected: all(str(e) in str(actual) for e in expected),
}


def _cmp(op: str, actual: Any, expected: Any) -> bool:
    compare = _COMPARE.get(op)
    if actual is None or compare is None:
        return False
    try:
        return bool(compare(actual, expected))
    except TypeError:
        return False


def matches(cond: Condition, getter: Callable[[str], Any]) -> bool:
    """Evaluate one condition; ``getter(field)`` returns a value or a list of values (any-match)."""
    actual = getter(cond.field)
    if cond.op == "has":
        return actual not in (None, [], {})
    values = actual if isinstance(actual, list) else [actual]
    op = cond.op
    expected = cond.value
    if cond.is_list and op == "equals":
        op = "any"
    return any(_cmp(op, v, expected) for v in values)
