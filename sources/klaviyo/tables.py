"""Pages of rows as Arrow tables, one fixed schema per stream, so dlt writes parquet at extract and
never normalises row by row (which folds customer-defined keys and was the bound on speed).

The contract (settings.COLUMN_TYPES): each attribute the spec defines is a typed column, nested
objects the spec defines are flattened to `parent__child`, free-form objects and lists are JSON text
in a `json` column with Klaviyo's own keys. What does not fit, an attribute outside the spec or a
value of another type than the spec's, is kept as sent in `extra_attributes`, never dropped.
"""

import gc
import logging
import threading
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Type

import orjson  # what dlt's own json uses; bags hold only JSON types, so no encoder hooks are needed
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.configuration import configspec
from dlt.common.data_types import TDataType
from dlt.extract.extractors import MaterializedEmptyList
from dlt.extract.incremental import Incremental
from dlt.extract.incremental.transform import ArrowIncremental, IncrementalTransform
from dlt.extract.items_transform import ItemTransform

from .settings import EXTRA_ATTRIBUTES

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: Dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP,
    "json": pa.string(),  # JSON text; the resource's `json` hint makes it DuckDB JSON, VARIANT, ...
}
# Python types each column takes as is; `type(v) in` keeps a bool out of a bigint column
PYTHON_TYPES: Dict[str, Set[type]] = {
    "text": {str, type(None)},
    "bigint": {int, type(None)},
    "double": {float, int, type(None)},
    "bool": {bool, type(None)},
    "timestamp": {str, datetime, type(None)},
}

Row = Mapping[str, Any]


class TableShape:
    """How one stream's rows become an Arrow table with its fixed schema."""

    def __init__(self, column_types: Mapping[str, TDataType]) -> None:
        self.columns: List[Tuple[str, Tuple[str, ...], str]] = [
            (name, tuple(name.split("__")), data_type)
            for name, data_type in column_types.items()
            if name != EXTRA_ATTRIBUTES
        ]
        self.schema = pa.schema(
            [pa.field(name, ARROW_TYPES[data_type]) for name, _, data_type in self.columns]
            + [pa.field(EXTRA_ATTRIBUTES, pa.string())]
        )
        # the known attributes as a tree: a leaf is None, an object the spec defines a dict
        self.known: Dict[str, Any] = {}
        for name, path, _ in self.columns:
            node = self.known
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(path[-1], None)
            # rows read back from the destination carry the flattened name itself
            self.known.setdefault(name, None)
        self._top: Set[str] = set(self.known)
        self._nested = any(len(path) > 1 for _, path, _ in self.columns)

    def table(self, rows: Sequence[Row]) -> pa.Table:
        """One page of rows (as `to_row` shapes them) as a table of this shape."""
        leftovers: List[Optional[Dict[str, Any]]]
        if self._nested:
            flat = [self._flatten(row) for row in rows]
            rows = [columns for columns, _ in flat]
            leftovers = [extra or None for _, extra in flat]
        else:  # the common case: a set check at C speed per row
            leftovers = [None if self._top.issuperset(row) else _outside(row, self.known) for row in rows]
        arrays = [
            self._array(rows, name, path, data_type, leftovers) for name, path, data_type in self.columns
        ]
        arrays.append(pa.array([None if x is None else orjson.dumps(x) for x in leftovers], pa.string()))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _flatten(self, row: Row) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The row's known leaves by column name, and what the known tree does not cover."""
        columns: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        _flatten_into(columns, extra, row, self.known, "")
        return columns, extra

    def _array(
        self,
        rows: Sequence[Row],
        name: str,
        path: Tuple[str, ...],
        data_type: str,
        leftovers: List[Optional[Dict[str, Any]]],
    ) -> pa.Array:
        values = [row.get(name) for row in rows]
        if data_type == "json":
            return pa.array([None if v is None else orjson.dumps(v) for v in values], pa.string())
        allowed = PYTHON_TYPES[data_type]
        if not set(map(type, values)).issubset(allowed):  # rare: a value the spec does not allow
            for index, value in enumerate(values):
                if type(value) not in allowed:
                    _keep(leftovers, index, path, value)
                    values[index] = None
        if data_type == "timestamp":
            return _timestamps(values, path, leftovers)
        return pa.array(values, ARROW_TYPES[data_type])


def _flatten_into(
    columns: Dict[str, Any],
    extra: Dict[str, Any],
    value: Mapping[str, Any],
    known: Mapping[str, Any],
    prefix: str,
) -> None:
    for key, item in value.items():
        if key not in known:
            extra[key] = item
            continue
        subtree = known[key]
        if subtree is None:
            columns[prefix + key] = item
        elif isinstance(item, dict):
            inner: Dict[str, Any] = {}
            _flatten_into(columns, inner, item, subtree, f"{prefix}{key}__")
            if inner:
                extra[key] = inner
        elif item is not None:
            extra[key] = item  # the spec has an object here


def _outside(value: Mapping[str, Any], known: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """What of `value` the known tree does not cover, nested as it was."""
    extra: Dict[str, Any] = {}
    for key, item in value.items():
        if key not in known:
            extra[key] = item
            continue
        subtree = known[key]
        if subtree is None or item is None:
            continue
        if isinstance(item, dict):
            inner = _outside(item, subtree)
            if inner:
                extra[key] = inner
        else:
            extra[key] = item  # the spec has an object here
    return extra or None


def _keep(leftovers: List[Optional[Dict[str, Any]]], index: int, path: Tuple[str, ...], value: Any) -> None:
    node = leftovers[index]
    if node is None:
        node = leftovers[index] = {}
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _timestamps(
    values: List[Any], path: Tuple[str, ...], leftovers: List[Optional[Dict[str, Any]]]
) -> pa.Array:
    try:
        if any(type(v) is str for v in values):
            return pc.cast(pa.array(values, pa.string()), TIMESTAMP)  # ISO 8601 with an offset
        return pa.array(values, TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # a space-separated or offset-less time, or a mix of strings and datetimes
    parsed: List[Optional[datetime]] = []
    for index, value in enumerate(values):
        try:
            parsed.append(_as_utc(value))
        except ValueError:
            _keep(leftovers, index, path, value)
            parsed.append(None)
    return pa.array(parsed, TIMESTAMP)


def _as_utc(value: Any) -> Optional[datetime]:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # no offset: UTC


class _NoticesForTheSourceAuthor(logging.Filter):
    """Drops two dlt warnings about this source's tables that users cannot act on:

    - a `json` hint differs from the Arrow string column under it: that is this module's design
      (JSON as text, typed by the hint), and dlt keeps the hint as meant;
    - columns "did not receive any data" in this load: advice to add column hints, which every
      table has; the columns get their type once they hold data, and no value is lost.

    Otherwise they would appear for many tables on every run, for library callers too.
    """

    def __init__(self, resources: Set[str]) -> None:
        super().__init__()
        self.resources = resources

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "when merging arrow schema with dlt schema" in message:
            return not any(f"In resource: {name}," in message for name in self.resources)
        if "did not receive any data" in message:
            return not any(
                f"table `{name}`" in message or f"table '{name}'" in message for name in self.resources
            )
        return True


_QUIET_RESOURCES: Set[str] = set()
logging.getLogger("dlt").addFilter(_NoticesForTheSourceAuthor(_QUIET_RESOURCES))


def quiet_dlt_notices(resource_name: str) -> None:
    """Registers a table of this source with the filter above."""
    _QUIET_RESOURCES.add(resource_name)


class PagesAsTables(ItemTransform[Any, Dict[str, Any]]):
    """A pipe step right after a resource's generator: each page (a list of row dicts) becomes one
    table, so the incremental and every later step work on Arrow. dlt's `add_map` maps row by row."""

    def __init__(self, shape: TableShape) -> None:
        super().__init__(lambda item: item)
        self.shape = shape

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if isinstance(item, list) and item and isinstance(item[0], dict):
            return self.shape.table(item)
        if isinstance(item, MaterializedEmptyList):
            # the table of a run without rows gets the same columns as one with rows: dlt's own
            # marker would give it `_dlt_load_id`/`_dlt_id` NOT NULL, which another pipeline on
            # the same dataset (a backfill range, an Airflow task) cannot add once rows exist
            return self.shape.table([])
        return item  # other markers and empty pages pass as they are


@configspec
class Window(Incremental[Any]):
    """dlt's incremental, whose `last_value_func` may be `capped_max` also on Arrow tables, and
    which reads a long backlog in chunks of about `chunk_rows` rows, one per run (history.py).

    dlt's Arrow transform takes only `max` or `min`; a capped max is `max` whose result is then
    held at the cap, which is what the JSON transform's `min(max(values), cap)` gives too.
    """

    # a configuration field, so dlt's copies of the incremental keep it
    chunk_rows: Optional[int] = None

    def __init__(self, *args: Any, chunk_rows: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_rows = chunk_rows
        self.chunk: Any = None  # this run's history.Chunk, made by the first read

    def bind(self, pipe: Any) -> "Window":
        self.chunk = None
        super().bind(pipe)
        return self

    def _make_or_get_transformer(self, cls: Type[IncrementalTransform]) -> IncrementalTransform:
        cap = getattr(self.last_value_func, "cap", None)
        if cls is not ArrowIncremental or cap is None:
            return super()._make_or_get_transformer(cls)
        if transformer := self._transformers.get(cls):
            return transformer
        capped = self.last_value_func
        self.last_value_func = max
        try:
            transformer = super()._make_or_get_transformer(_CappedArrowIncremental)
        finally:
            self.last_value_func = capped
        assert isinstance(transformer, _CappedArrowIncremental)
        transformer.cap = cap
        self._transformers[cls] = transformer
        return transformer


class _CappedArrowIncremental(ArrowIncremental):
    cap: Any = None

    def __call__(self, tbl: Any) -> Tuple[Any, bool, bool]:
        result = super().__call__(tbl)
        if self.last_value is not None and self.cap is not None and self.last_value > self.cap:
            self.last_value = self.cap
        return result


class FewerCollections:
    """While any page is being read, the garbage collector's first threshold is raised (and
    pyarrow allocates with malloc, see `__enter__`).

    Decoding one page of 1,000 events makes some 20,000 dicts and lists, all alive until the page
    is shaped; at Python's default threshold (700) that triggers dozens of collections per page,
    each walking the page again, and promotes it to the oldest generation, whose full collections
    walk the whole heap. Measured on one page: 14 ms to decode with the default, 5 ms without
    collections. The cyclic collector still runs, every 50,000 allocations; the previous
    thresholds come back when the last read ends. It is process-wide, as every gc setting is.
    """

    THRESHOLD = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._saved: Tuple[int, int, int] = gc.get_threshold()
        self._saved_pool: pa.MemoryPool = pa.default_memory_pool()

    def __enter__(self) -> None:
        with self._lock:
            if self._readers == 0:
                self._saved = gc.get_threshold()
                if 0 < self._saved[0] < self.THRESHOLD:
                    gc.set_threshold(self.THRESHOLD, *self._saved[1:])
                # speed: pages are shaped on many threads, and pyarrow's default pool (mimalloc)
                # keeps what each thread freed: 532 MiB at 32 workers for 1M events, malloc 268 MiB
                self._saved_pool = pa.default_memory_pool()
                pa.set_memory_pool(pa.system_memory_pool())
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0:
                gc.set_threshold(*self._saved)
                pa.set_memory_pool(self._saved_pool)


PAGE_READS = FewerCollections()
