"""Builders of the streams that need more than their row of STREAMS: profiles with predictive
analytics, each list's and segment's profile count, the records of each custom object type.

Registered in `klaviyo.SPECIAL_STREAMS` by `MORE_STREAMS`; each reads through the run's `Reader`.
"""

import dataclasses
import functools
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.incremental import Incremental
from dlt.sources import DltResource

from .reader import Query, Reader, to_row
from .settings import COLUMN_TYPES, PREDICTIVE_ANALYTICS_COLUMNS, STREAMS

if TYPE_CHECKING:
    from . import Run

# `profiles` asking for predictive analytics too; the client limits such requests at their tier
# (ENDPOINTS["profiles_predictive_analytics"]), global_exclusions keeps the full one
_PREDICTIVE_PROFILES = dataclasses.replace(
    STREAMS["profiles"],
    params={
        **STREAMS["profiles"].params,
        "additional-fields[profile]": STREAMS["profiles"].params["additional-fields[profile]"]
        + ",predictive_analytics",
    },
)


def profiles(name: str, run: "Run", built: Mapping[str, DltResource]) -> List[DltResource]:
    """The profiles table; with `predictive_analytics`, each profile's CLV, churn and next order."""
    from . import _plain, _resource  # the package's factory (the package imports this module)

    if not run.predictive_analytics:
        return _plain(name, run, built)
    columns = {**COLUMN_TYPES[name], **PREDICTIVE_ANALYTICS_COLUMNS}
    cursor = run.incremental(STREAMS[name])
    resource = _resource(name, _predictive_profile_rows, run.reader(), cursor, column_types=columns)
    resource.apply_hints(
        columns={column: {"data_type": t} for column, t in PREDICTIVE_ANALYTICS_COLUMNS.items()}
    )
    return [resource]


def _predictive_profile_rows(reader: Reader, cursor: Incremental[Any]) -> Iterator[TDataItem]:
    from . import _bounds

    yield dlt.mark.materialize_table_schema()
    yield from reader.read_split(Query(_PREDICTIVE_PROFILES, *_bounds(cursor)))


def profile_counts(name: str, run: "Run", built: Mapping[str, DltResource]) -> List[DltResource]:
    """Every list's (segment's) `profile_count`, one request each, whatever the lists table loads."""
    from . import _resource

    return [_resource(name, _profile_count_rows, run.reader(), name)]


# the table of counts -> the collection whose members are counted
_COUNTED = {"list_profile_counts": "lists", "segment_profile_counts": "segments"}


def _profile_count_rows(reader: Reader, table: str) -> Iterator[TDataItem]:
    yield dlt.mark.materialize_table_schema()
    parents = _COUNTED[table]
    pages = reader.bounded(reader.client.paginate(parents, {f"fields[{parents[:-1]}]": "name"}))
    ids = [item["id"] for page in pages for item in page.data]
    counted_at = datetime.now(timezone.utc)
    queries = [Query(STREAMS[table], path_id=i, columns={"counted_at": counted_at}) for i in ids]
    yield from reader.fan_out([functools.partial(reader.pages_unless_gone, q) for q in queries])


def custom_object_records(name: str, run: "Run", built: Mapping[str, DltResource]) -> List[DltResource]:
    """Every record of every custom object type, each type into its own table (`object_tables`)."""
    from . import _resource

    return [_resource(name, _custom_object_record_rows, run.reader())]


def _custom_object_record_rows(reader: Reader) -> Iterator[TDataItem]:
    """Klaviyo gives records no timestamp, sort or filter, so each run reads them all: at 60 requests
    a minute of 100 records, 6,000 records a minute."""
    from . import _replace_where_merge_cannot_delete

    yield from _replace_where_merge_cannot_delete()
    types = [
        to_row(item) for page in reader.bounded(reader.client.paginate("object_types")) for item in page.data
    ]
    tables = object_tables(types)
    stream = STREAMS["custom_object_records"]

    def records_of(type_id: str) -> Iterator[TDataItem]:
        query = Query(stream, path_id=type_id, columns={"object_type_id": type_id})
        for rows in reader.pages_unless_gone(query):
            yield dlt.mark.with_table_name(rows, tables[type_id])

    yield from reader.fan_out([functools.partial(records_of, t["id"]) for t in types])


def object_tables(types: List[Dict[str, Any]]) -> Dict[str, str]:
    """Object type id -> its table: `custom_object_` and the title in snake_case, any script
    transliterated; types whose titles give the same name get their id appended, each."""
    from . import metric_table_name

    names = {t["id"]: "custom_object_" + metric_table_name(str(t.get("title") or t["id"])) for t in types}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {tid: f"{name}_{tid.lower()}" if name in shared else name for tid, name in names.items()}


MORE_STREAMS = {
    "profiles": profiles,
    "list_profile_counts": profile_counts,
    "segment_profile_counts": profile_counts,
    "custom_object_records": custom_object_records,
}
