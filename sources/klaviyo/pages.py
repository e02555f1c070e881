"""The fast page path of the event tables: a page of `/events` decoded by msgspec into typed structs
and built into the stream's Arrow table at once, with no row dicts in between.

A page of 1,000 events costs the generic path (orjson into dicts, `to_row`, `TableShape.table`)
some 40 ms of CPU, most of it on `event_properties`, which is decoded into Python objects only to
be encoded again as the JSON column; here that bag is kept as the JSON text Klaviyo sent
(`msgspec.Raw`), and the page as a whole costs a few ms.

Exactness is by construction: the structs accept only what the event tables' columns hold as is
(known attributes, the spec's types, the three relationships). A page with anything else (an
attribute outside the spec, a value of another type, a timestamp Arrow does not parse) is decoded
again the generic way, whose `extra_attributes` keep what does not fit. tests/test_pages.py holds
both paths to equal tables.

Hooks (the only places the rest of the source knows of this module):
- `client._cache_json` decodes bodies with `decode_document`;
- `Reader.pages` reads its pages through `fast_pages`, which yields the page's table in `data`;
- `Reader.read_split` and `_in_batches` handle a page that is a table (`cursor_keys`, `without_seen`);
"""

import threading
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common import json

from .settings import COLUMN_TYPES, EXTRA_ATTRIBUTES, STREAMS, Stream
from .tables import ARROW_TYPES, PYTHON_TYPES, TIMESTAMP, TableShape

T = TypeVar("T")
_NULL = msgspec.Raw(b"null")
# Pages are built on the read threads: with pyarrow's default pool (mimalloc) each thread keeps
# what it freed, and 32 threads held 532 MiB at once while loading 1M events; malloc: 268 MiB.
POOL = pa.system_memory_pool()


class _Ref(msgspec.Struct, gc=False):
    id: Optional[str] = None


class _ToOne(msgspec.Struct, gc=False):
    data: Optional[_Ref] = None


class _ToMany(msgspec.Struct, gc=False):
    data: List[_Ref] = []


class _EventRelationships(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    profile: Optional[_ToOne] = None
    metric: Optional[_ToOne] = None
    attributions: Optional[_ToMany] = None


class _EventAttributes(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The spec's event attributes; another one makes the page take the generic path."""

    timestamp: Optional[int] = None
    event_properties: msgspec.Raw = _NULL  # the customer's bag, as the JSON text Klaviyo sent
    datetime: Optional[str] = None
    uuid: Optional[str] = None


class _Event(msgspec.Struct, gc=False):
    id: Optional[str] = None
    attributes: Optional[_EventAttributes] = None
    relationships: Optional[_EventRelationships] = None


class _EventsDocument(msgspec.Struct):
    data: List[_Event]
    included: List[Any] = []  # a few dozen per page: plain dicts, resolved by the read path's own code
    links: Any = None
    errors: Any = None


_EVENTS_DECODER = msgspec.json.Decoder(_EventsDocument)
_NO_ATTRIBUTES = _EventAttributes()
_NO_RELATIONSHIPS = _EventRelationships()
_NO_RELATION = _ToOne()
_NO_ATTRIBUTIONS = _ToMany()

# the columns a page of events gives without included resources
_EVENT_COLUMNS = {"id", "datetime", "timestamp", "uuid", "event_properties", "metric_id", "profile_id"}
# filled by the read path's `add_included` (metric name and integration, attribution)
_INCLUDED_COLUMNS = {
    "metric_name",
    "metric_integration",
    "attributed_event_id",
    "campaign_id",
    "campaign_message_id",
    "flow_id",
    "flow_message_id",
}

AddIncluded = Callable[[List[Dict[str, Any]], List[Dict[str, Any]]], None]


class EventPages:
    """Builds one event stream's pages as tables of its `TableShape`, or says it cannot."""

    def __init__(self, column_types: Mapping[str, Any], add_included: AddIncluded) -> None:
        self.shape = TableShape(column_types)
        self.types = {name: str(t) for name, t in column_types.items() if name != EXTRA_ATTRIBUTES}
        self.add_included = add_included

    def document(self, body: bytes) -> Optional[Dict[str, Any]]:
        """The page as a document whose `data` is one table, or None for the generic path."""
        try:
            document = _EVENTS_DECODER.decode(body)
        except msgspec.MsgspecError:
            return None  # not this shape: the generic decoder keeps it, or says what is wrong
        if document.errors or not document.data:
            return None
        try:
            table = self.table(document.data, document.included)
        except (pa.ArrowException, OverflowError):
            return None  # e.g. a time without an offset, a number beyond 64 bits: the generic path
        if table is None:
            return None
        return {"data": [table], "links": document.links, "included": []}

    def table(self, events: List[_Event], included: List[Any]) -> Optional[pa.Table]:
        attributes = [e.attributes or _NO_ATTRIBUTES for e in events]
        relationships = [e.relationships or _NO_RELATIONSHIPS for e in events]
        metrics = [(r.metric or _NO_RELATION).data for r in relationships]
        profiles = [(r.profile or _NO_RELATION).data for r in relationships]
        values: Dict[str, List[Any]] = {
            "id": [e.id for e in events],
            "datetime": [a.datetime for a in attributes],
            "timestamp": [a.timestamp for a in attributes],
            "uuid": [a.uuid for a in attributes],
            "metric_id": [None if m is None else m.id for m in metrics],
            "profile_id": [None if p is None else p.id for p in profiles],
        }
        resolved: Dict[str, pa.Array] = {}  # columns from the included resources
        if included:
            # the read path's own resolution, run once per distinct (metric, attributions) of the page
            keys: Dict[Tuple[Any, Any], int] = {}
            index = [
                keys.setdefault(
                    (
                        metric,
                        None if r.attributions is None else tuple(ref.id for ref in r.attributions.data),
                    ),
                    len(keys),
                )
                for metric, r in zip(values["metric_id"], relationships, strict=True)
            ]
            rows: List[Dict[str, Any]] = []
            for metric, attributions in keys:
                row: Dict[str, Any] = {"metric_id": metric}
                if attributions is not None:
                    row["attribution_ids"] = list(attributions)
                rows.append(row)
            self.add_included(rows, included)
            taken = pa.array(index, pa.int32(), memory_pool=POOL)
            for name in set().union(*rows) - {"metric_id"}:
                if name not in _INCLUDED_COLUMNS or name not in self.types:
                    return None  # the generic path keeps it in extra_attributes
                distinct = [row.get(name) for row in rows]
                if not set(map(type, distinct)).issubset(PYTHON_TYPES[self.types[name]]):
                    return None
                resolved[name] = pc.take(
                    pa.array(distinct, ARROW_TYPES[self.types[name]], memory_pool=POOL),
                    taken,
                    memory_pool=POOL,
                )
        for name, column in values.items():
            allowed = PYTHON_TYPES.get(self.types.get(name, ""), {type(None)})
            if not set(map(type, column)).issubset(allowed):
                return None  # outside the shape, or a value its column does not take as is
        properties = [a.event_properties for a in attributes]
        arrays = []
        for name, data_type in self.types.items():
            if name == "event_properties":
                texts = [None if raw == _NULL else bytes(raw) for raw in properties]
                arrays.append(pa.array(texts, pa.string(), memory_pool=POOL))  # checks the text is UTF-8
            elif name in resolved:
                arrays.append(resolved[name])
            elif data_type == "timestamp":
                arrays.append(
                    pc.cast(
                        pa.array(values[name], pa.string(), memory_pool=POOL), TIMESTAMP, memory_pool=POOL
                    )
                )
            else:
                arrays.append(
                    pa.array(values.get(name, [None] * len(events)), ARROW_TYPES[data_type], memory_pool=POOL)
                )
        arrays.append(
            pa.nulls(len(events), pa.string(), memory_pool=POOL)
        )  # extra_attributes: nothing is left over
        return pa.Table.from_arrays(arrays, schema=self.shape.schema)


_reading = threading.local()


def decode_document(body: bytes) -> Any:
    """A response body as its JSON:API document: the fast path's while this thread reads event
    pages through `fast_pages`, otherwise dlt's json (orjson)."""
    pages: Optional[EventPages] = getattr(_reading, "pages", None)
    if pages is not None:
        document = pages.document(body)
        if document is not None:
            return document
    return json.loadb(body)


_FAST: Dict[int, Optional[EventPages]] = {}
_FAST_LOCK = threading.Lock()


def _pages_for(stream: Stream, add_included: AddIncluded) -> Optional[EventPages]:
    with _FAST_LOCK:
        if id(stream) not in _FAST:
            names = [name for name, known in STREAMS.items() if known is stream]
            columns = COLUMN_TYPES.get(names[0]) if stream.endpoint == "events" and names else None
            fits = (
                columns is not None
                and set(columns) - {EXTRA_ATTRIBUTES} <= _EVENT_COLUMNS | _INCLUDED_COLUMNS
            )
            _FAST[id(stream)] = EventPages(columns, add_included) if columns and fits else None
        return _FAST[id(stream)]


def fast_pages(
    pages: Iterator[T], stream: Stream, extra_columns: Mapping[str, Any], add_included: AddIncluded
) -> Iterator[T]:
    """`pages` of an event stream, each fetched with the fast decoder on (for this thread only,
    and only during the fetch: other reads of the thread between two pages decode as usual)."""
    fast = None if extra_columns else _pages_for(stream, add_included)
    if fast is None:
        yield from pages
        return
    try:
        while True:
            saved = getattr(_reading, "pages", None)
            _reading.pages = fast
            try:
                page = next(pages)
            except StopIteration:
                return
            finally:
                _reading.pages = saved
            yield page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # the paginator stops now, as when `Reader.bounded` closes it


def page_table(data: Sequence[Any]) -> Optional[pa.Table]:
    """The table of a page the fast path built, else None."""
    return data[0] if len(data) == 1 and isinstance(data[0], pa.Table) else None


def cursor_keys(rows: Any, cursor: str) -> List[Tuple[Any, Any]]:
    """(cursor value, id) of each row of a page, a list of rows or a table."""
    if isinstance(rows, pa.Table):
        return list(zip(rows.column(cursor).to_pylist(), rows.column("id").to_pylist(), strict=True))
    return [(row[cursor], row["id"]) for row in rows]


def without_seen(rows: Any, cursor: str, boundary: Any, seen: Set[Any]) -> Any:
    """The page without the rows at the boundary instant that were read already."""
    if not seen:
        return rows
    if isinstance(rows, pa.Table):
        earliest = pc.min(rows.column(cursor)).as_py()
        if earliest is None or earliest > boundary:
            return rows  # most pages: no copy of the table
        at_boundary = pc.equal(rows.column(cursor), pa.scalar(boundary, TIMESTAMP))
        read = pc.and_(at_boundary, pc.is_in(rows.column("id"), pa.array(list(seen), pa.string())))
        return pc.filter(rows, pc.invert(pc.fill_null(read, False)), memory_pool=POOL)
    return [row for row in rows if row[cursor] != boundary or row["id"] not in seen]


def before(rows: Any, cursor: str, high: Any) -> Tuple[Any, bool]:
    """The rows of a sorted page dated before `high`, and whether the page reached it."""
    if isinstance(rows, pa.Table):
        if not rows.num_rows:
            return rows, False
        column = rows.column(cursor)
        last = column[-1].as_py()
        if last is None or last < high:
            return rows, False
        keep = pc.fill_null(pc.less(column, pa.scalar(high, TIMESTAMP)), True)
        return pc.filter(rows, keep, memory_pool=POOL), True
    kept = [row for row in rows if row[cursor] is None or row[cursor] < high]
    return kept, len(kept) < len(rows)
