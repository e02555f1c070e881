"""Profiles deleted in Klaviyo, mirrored on a schedule: Klaviyo has no feed of deletions.

The check (`deleted_profiles="mark"` or `"drop"`; every `deletion_check_days`, default 7, or at
once with `check_deletions_now=True`) reads the id of every current profile (a sparse fieldset:
`fields[profile]=id`, 100 a request at 750/min), reads the ids loaded in `profiles`, and for
every id Klaviyo no longer has:

- `deleted_profiles`: a row (`id`, `deleted_at`), the record of what was deleted when;
- `profiles`: "mark" replaces the row by a tombstone (`id`, `deleted_at`, every personal column
  empty); "drop" deletes the row;
- event tables: with `deleted_profile_events="drop"` the person's events are deleted; "keep"
  (default) leaves them (they carry only the profile id).

`list_members` and `segment_members` need no weekly check: a deleted person leaves every list,
which each run's membership check sees (see membership.py). `global_exclusions` is a snapshot
that a deleted profile leaves on the next run.

The loaded ids are read from the destination (SQL destinations and the filesystem, through dlt's
SQL client) only when a check is due: keeping every profile's id in dlt's state instead would
write them all into the destination's state table on every run.
"""

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set

import dlt
import pyarrow as pa
from dlt.common import logger
from dlt.common.schema.typing import TColumnSchema
from dlt.common.typing import TDataItem

from .reader import Query, Reader
from .settings import STREAMS

DELETION_MODES = ("mark", "drop")
EVENT_MODES = ("keep", "drop")
DEFAULT_DELETION_CHECK_DAYS = 7.0
IDS_PER_QUERY = 1000  # profile ids per `in (...)` when looking up events
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def checked_options(deleted_profiles: Optional[str], check_days: float, events: str) -> None:
    if deleted_profiles is not None and deleted_profiles not in DELETION_MODES:
        raise ValueError(
            f"deleted_profiles={deleted_profiles!r} must be None (no check), 'mark' (keep a row with"
            " `deleted_at`, personal columns emptied) or 'drop' (delete the rows)."
        )
    if not isinstance(check_days, (int, float)) or check_days < 0:
        raise ValueError(f"deletion_check_days={check_days!r} must be a number of days >= 0.")
    if events not in EVENT_MODES:
        raise ValueError(
            f"deleted_profile_events={events!r} must be 'keep' or 'drop' (delete the events of deleted profiles)."
        )


def deleted_profile_rows(
    reader: Reader,
    mode: str,
    check_days: float,
    check_now: bool,
    events: str,
    event_tables: Sequence[str],
) -> Iterator[TDataItem]:
    """The rows that mirror Klaviyo's deletions, when a check is due (see the module docstring).

    Rows are Arrow tables, as the source's other tables are: dicts would give `profiles` dlt's
    `_dlt_load_id`/`_dlt_id` columns, which its Arrow rows do not fill. (So `deleted_profiles`
    appears with the first deletion.)
    """
    state = dlt.current.resource_state()
    now = datetime.now(timezone.utc)
    last = state.get("checked_at")
    if not check_now and last and now - datetime.fromisoformat(last) < timedelta(days=check_days):
        return
    loaded = _loaded_profile_ids()
    if loaded is None:
        state["checked_at"] = now.isoformat()  # nothing loaded yet: the next check is due in a week
        return
    current: Set[str] = set()
    for rows in reader.pages(Query(STREAMS["deleted_profiles"])):  # the ids of every profile
        current.update(row["id"] for row in rows)
    deleted = sorted(loaded - current)
    logger.info(f"deleted_profiles: {len(deleted)} of {len(loaded)} loaded profiles are no longer in Klaviyo")
    state["checked_at"] = now.isoformat()
    if not deleted:
        return
    marks = pa.table(
        {"id": pa.array(deleted, pa.string()), "deleted_at": pa.array([now] * len(deleted), _TIMESTAMP)}
    )
    yield marks
    yield dlt.mark.with_hints(marks, _hints("profiles", mode == "drop"), create_table_variant=True)
    if events == "drop":
        for table in event_tables:
            ids = _event_ids(table, deleted)
            if ids:
                rows = pa.table(
                    {"id": pa.array(ids, pa.string()), "deleted_at": pa.array([now] * len(ids), _TIMESTAMP)}
                )
                yield dlt.mark.with_hints(rows, _hints(table, True), create_table_variant=True)


def _hints(table: str, delete: bool) -> Any:
    column: TColumnSchema = {"data_type": "timestamp", "nullable": True}
    if delete:
        column["hard_delete"] = True  # dlt deletes the row of each key that comes with a value here
    return dlt.mark.make_hints(
        table_name=table, write_disposition="merge", primary_key="id", columns={"deleted_at": column}
    )


def _loaded_profile_ids() -> Optional[Set[str]]:
    """Ids in `profiles` that are not yet marked deleted; None if there is no such table to read."""
    pipeline = dlt.current.pipeline()
    columns = _loaded_columns(pipeline, "profiles")
    if not columns:
        return None
    marked = "deleted_at" in columns
    try:
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name("profiles")
            where = " where deleted_at is null" if marked else ""
            rows = client.execute_sql(f"select id from {name}{where}") or []
    except Exception as exc:  # a destination without SQL access, or a table not created yet
        logger.warning(
            f"deleted_profiles: cannot read the loaded profiles from the destination ({type(exc).__name__}:"
            f" {exc}); deletions are not checked this run"
        )
        return None
    return {row[0] for row in rows}


def _event_ids(table: str, profile_ids: List[str]) -> List[str]:
    """Ids of the events of these profiles loaded in `table` (none if the table is not loaded)."""
    pipeline = dlt.current.pipeline()
    if "profile_id" not in _loaded_columns(pipeline, table):
        return []
    found: List[str] = []
    with pipeline.sql_client() as client:
        name = client.make_qualified_table_name(table)
        for start in range(0, len(profile_ids), IDS_PER_QUERY):
            chunk = profile_ids[start : start + IDS_PER_QUERY]
            marks = ",".join(["%s"] * len(chunk))
            rows = client.execute_sql(f"select id from {name} where profile_id in ({marks})", *chunk) or []
            found.extend(row[0] for row in rows)
    return found


def _loaded_columns(pipeline: Any, table: str) -> Dict[str, Any]:
    """The table's columns as the pipeline's schema has them ({} before its first load)."""
    if not pipeline.default_schema_name:
        return {}
    columns: Dict[str, Any] = pipeline.default_schema.tables.get(table, {}).get("columns", {})
    return columns
