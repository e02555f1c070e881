"""Klaviyo source for dlt: profiles, lists, segments, campaigns, flows, metrics, events, reports.

Copies a Klaviyo account (profiles, suppressions, lists and their members, campaigns, metrics and
events, with opt-in flows, segments, templates, catalogs, coupons, forms, images and reports)
through Klaviyo's current JSON:API (revision-dated, cursor-paged).

Example (writes klaviyo.duckdb; a dataset named like the file would clash with its catalog):
    >>> import dlt
    >>> from klaviyo import klaviyo_source
    >>> pipeline = dlt.pipeline("klaviyo", destination="duckdb", dataset_name="klaviyo_data")
    >>> load_info = pipeline.run(klaviyo_source(start_date="2024-01-01", extra_metrics=["Placed Order"]))

Event tables and profiles load incrementally and merge on `id`, so running again adds only what is
new and never duplicates a row.
"""

import difflib
import functools
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import (
    AbstractSet,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from anyascii import anyascii
from dlt.common import logger
from dlt.common.schema.typing import TColumnSchema, TWriteDispositionConfig
from dlt.common.time import ensure_pendulum_datetime
from dlt.common.typing import TAnyDateTime, TDataItem
from dlt.extract.incremental import Incremental
from dlt.sources import DltResource

from . import history
from .client import (
    KlaviyoClient,
    KlaviyoError,
    KlaviyoQuotaExhausted,
    RetryPolicy,
    checked_api_key,
)
from .deletions import DEFAULT_DELETION_CHECK_DAYS, deleted_profile_rows
from .deletions import checked_options as checked_deletion_options
from .membership import checked_options as checked_membership_options
from .membership import column_hints as member_column_hints
from .membership import column_types as member_column_types
from .membership import member_rows
from .more_streams import MORE_STREAMS
from .reader import Query, Reader, filter_time, integration_key, to_row
from .settings import (
    CAMPAIGN_CHANNELS,
    COLUMN_TYPES,
    COUPONS_PER_REQUEST,
    DEFAULT_BASE_URL,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_CONVERSION_METRIC,
    DEFAULT_EVENT_LOOKBACK_SECONDS,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_REVISION,
    DEFAULT_WORKERS,
    KLAVIYO_INTEGRATION_KEY,
    METRIC_TABLES,
    REPORT_MAX_DAYS,
    REPORT_STATISTICS,
    REPORTS,
    SERIES_WINDOW_DAYS,
    STREAMS,
    SUPPRESSION_REASONS,
    TABLE_COLUMNS,
    Report,
    Stream,
)
from .tables import PagesAsTables, TableShape, Window, quiet_dlt_notices

__all__ = ["klaviyo_source", "KlaviyoError", "metric_table_name", "metric_tables_for"]

# Rows handed to dlt at once (several pages): dlt's per-item work is then small beside the rows'.
BATCH_ROWS = 5000

# Incremental loads need a start even when the user gives only an end.
BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Snapshot tables (a stream with write_disposition "replace") are merged instead: every old row is
# deleted and the staged rows inserted, deduplicated on the primary key, in one transaction. dlt's
# replace truncates once per load package and then inserts, so a job that had committed when the
# run was killed, and that dlt runs again on resume, would hold every row twice.
SNAPSHOT: TWriteDispositionConfig = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "destination_scope": "1 = 1",
}


@dlt.source(name="klaviyo")
def klaviyo_source(
    api_key: str = dlt.secrets.value,
    start_date: Optional[TAnyDateTime] = None,
    end_date: Optional[TAnyDateTime] = None,
    base_url: str = DEFAULT_BASE_URL,
    revision: str = DEFAULT_REVISION,
    extra_metrics: Sequence[str] = (),
    lookback_seconds: float = DEFAULT_EVENT_LOOKBACK_SECONDS,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    workers: int = DEFAULT_WORKERS,
    conversion_metric: str = DEFAULT_CONVERSION_METRIC,
    membership: str = "incremental",
    conversion_metric_id: Optional[str] = None,
    predictive_analytics: bool = False,
    removed_members: str = "drop",
    deleted_profiles: Optional[str] = None,
    deletion_check_days: float = DEFAULT_DELETION_CHECK_DAYS,
    check_deletions_now: bool = False,
    deleted_profile_events: str = "keep",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> List[DltResource]:
    """Klaviyo account data, one resource per table.

    Args:
        api_key: A Klaviyo private API key (`pk_...`) with read scopes. Resolved from
            `.dlt/secrets.toml` `[sources.klaviyo] api_key` or `SOURCES__KLAVIYO__API_KEY`.
        start_date: Load only data updated (events: occurring) at or after this date, which must
            be in the past. All history when None.
        end_date: Load only data before this date (a date after now counts as now: Klaviyo refuses
            filter dates in the future); a run with an end date does not move the incremental
            state (use it for backfills).
        base_url: The API root; every request stays under it.
        revision: The Klaviyo API revision sent with every request.
        extra_metrics: Names of further metrics whose events each get a table named after the metric
            in snake_case, e.g. "Placed Order" -> `placed_order` (other scripts transliterated:
            "Заказ оформлен" -> `zakaz_oformlen`); names that would share a table are an error. A
            name is matched exactly, else ignoring case (with a warning); a near miss of an
            existing name fails with the suggestion; a name the account does not have yet gives an
            empty table and a warning (Klaviyo creates a metric with its first event). At most
            500 names; the `events` table holds every metric.
        lookback_seconds: Each run reads events and profiles again from this long before the previous
            run started, to catch events that reached Klaviyo late and profile updates that
            Klaviyo applied late (it applies many asynchronously); merge keeps the tables free of
            duplicates.
        max_retry_after: A 429 asking to wait longer than this many seconds fails the run instead of
            sleeping (Klaviyo's daily quotas answer with waits of hours).
        conversion_metric: The metric the report tables count as conversions ("Placed Order").
            Where several metrics have that name (e.g. from integrations `api` and `shopify`), the
            one with the most recent event is used (then Klaviyo's own, then the smallest id), and
            a warning says which.
        conversion_metric_id: The id of the conversion metric, to choose it instead.
        membership: "incremental" (default) loads list_members and segment_members as they change:
            new joins, and the members who left, found from each list's member count (see the
            README for the requests it costs); "snapshot" reads every member every run.
        predictive_analytics: Also load each profile's predictive analytics (historic and predicted
            CLV, churn probability, expected next order, ...) into `profiles`. Klaviyo serves
            profiles with them at 10/s and 150/min instead of 75/s and 750/min, so a first load
            of the profiles takes five times as long.
        removed_members: What happens to the row of a member who left a list (segment): "drop"
            (default) deletes it; "mark" keeps it with `removed_at` (and `deleted_at` where the
            person was deleted from Klaviyo).
        deleted_profiles: Mirror profiles deleted in Klaviyo (see deletions.py and the README):
            None (default) does not check; "mark" leaves a tombstone row (`id`, `deleted_at`, the
            personal columns emptied) in `profiles`; "drop" deletes the row. Either way the
            `deleted_profiles` table records each deletion.
        deletion_check_days: Days between two deletion checks (7). Each check reads every profile's id.
        check_deletions_now: Check for deletions in this run, whenever the last check was.
        deleted_profile_events: "keep" (default) the events of deleted profiles, or "drop" them.
        workers: Requests each table may have in flight at once. Klaviyo's per-endpoint rate limits
            are enforced on our side whatever this is, so raising it does not cause 429s.
        chunk_rows: A table with a longer backlog (a first load, a start_date far back) loads it
            in chunks of about this many rows (per metric), one per run, each committed with its
            incremental state: a failed run loses at most its chunk. `klaviyo.history.load_history`
            runs a pipeline until every table is caught up. Not with end_date (dlt keeps no
            state for a range with an end).

    Returns:
        The resources: profiles, global_exclusions, lists, list_members, campaigns, metrics, the
        event tables bounce, click, dropped_email, mark_as_spam, receive, unsubscribe (plus one per
        extra metric), and `events` (every metric in one table; not selected by default); with
        `deleted_profiles`, also `deleted_profiles`.
    """
    api_key = checked_api_key(api_key)
    if not isinstance(base_url, str) or urlsplit(base_url).path.rstrip("/").rsplit("/", 1)[-1] != "api":
        raise ValueError(
            f"base_url={base_url!r} does not end in /api, where Klaviyo's API lives (Klaviyo answers"
            f" anything else with 404): use e.g. {DEFAULT_BASE_URL}."
        )
    run_started = datetime.now(timezone.utc)
    start = _parse_date("start_date", start_date)
    end = _parse_date("end_date", end_date)
    if start and start >= run_started:
        raise ValueError(
            f"start_date {start.isoformat()} is not in the past: Klaviyo has nothing to load from then on"
            " and refuses filter dates later than now."
        )
    if end and end > run_started:
        # Klaviyo answers a filter date later than now with 400 "End date may not be in the future"
        logger.info(f"end_date {end.isoformat()} is in the future: loading up to now instead")
        end = run_started
    if start and end and end <= start:
        raise ValueError(f"end_date {end.isoformat()} must be after start_date {start.isoformat()}.")
    if not isinstance(lookback_seconds, (int, float)) or lookback_seconds < 0:
        raise ValueError(f"lookback_seconds={lookback_seconds!r} must be a number of seconds >= 0.")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be a whole number >= 1.")
    checked_membership_options(membership, removed_members)
    checked_deletion_options(deleted_profiles, deletion_check_days, deleted_profile_events)
    if not isinstance(predictive_analytics, bool):
        raise ValueError(f"predictive_analytics={predictive_analytics!r} must be True or False.")
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows!r} must be a whole number of rows >= 1.")
    client = KlaviyoClient(api_key, base_url, revision, RetryPolicy.from_dlt_config(max_retry_after))
    extra_tables = metric_tables_for(extra_metrics)
    run = Run(
        client,
        MetricCatalog(client),
        workers,
        start,
        end,
        run_started,
        lookback_seconds,
        (conversion_metric, conversion_metric_id),
        membership,
        {**METRIC_TABLES, **extra_tables},
        set(extra_tables),
        predictive_analytics=predictive_analytics,
        removed_members=removed_members,
        deleted_profiles=deleted_profiles,
        deletion_check_days=deletion_check_days,
        check_deletions_now=check_deletions_now,
        deleted_profile_events=deleted_profile_events,
        chunk_rows=chunk_rows,
    )
    return build_streams(run)


@dataclass(frozen=True)
class Run:
    """What the tables of one run share: the client, the user's options and when the run started."""

    client: KlaviyoClient
    catalog: "MetricCatalog"
    workers: int
    start: Optional[datetime]
    end: Optional[datetime]
    started: datetime
    lookback_seconds: float
    conversion: Tuple[str, Optional[str]]
    membership: str
    metric_tables: Mapping[str, Tuple[str, ...]]
    extra_tables: AbstractSet[str]  # the user's names: a near miss is an error
    predictive_analytics: bool = False  # profiles with their predictive analytics, at its lower tier
    removed_members: str = "drop"  # membership.py
    deleted_profiles: Optional[str] = None  # deletions.py: None, "mark" or "drop"
    deletion_check_days: float = DEFAULT_DELETION_CHECK_DAYS
    check_deletions_now: bool = False
    deleted_profile_events: str = "keep"
    chunk_rows: int = DEFAULT_CHUNK_ROWS  # a longer backlog loads in committed chunks (history.py)

    def reader(self) -> Reader:
        """A table's reader: its own bound of `workers` requests in flight."""
        return Reader(self.client, self.workers)

    def incremental(self, stream: Stream) -> Optional[Incremental[Any]]:
        """The incremental on the stream's cursor; the next run starts no later than its lookback
        (`lookback_seconds` for a stream with `lookback`) before this one.

        Capping the saved cursor at the run's start means rows dated in the future are loaded but
        do not make the next run skip what happens until then; going back `lookback` seconds
        catches rows that reached Klaviyo after this run read their time range. dlt's own `lag`
        steps back from the newest row instead, which a single future-dated event would defeat.
        """
        if not stream.incremental or stream.cursor is None:
            return None
        lookback = self.lookback_seconds if stream.lookback else 0.0
        return Window(
            stream.cursor,
            initial_value=self.start or (BEGINNING_OF_TIME if self.end else None),
            end_value=self.end,
            # with an end dlt keeps no state, so there is nothing to cap (and dlt wants max(end) == end)
            last_value_func=max if self.end else _capped_max(self.started - timedelta(seconds=lookback)),
            # with a lookback many rows share the boundary; merge on `id` dedupes them instead
            primary_key=() if lookback else None,
            chunk_rows=self.chunk_rows,
        )


# A builder makes a stream's resources, given the run and the resources built before it (parents).
Builder = Callable[[str, Run, Mapping[str, DltResource]], List[DltResource]]


def build_streams(run: Run) -> List[DltResource]:
    """Every stream of STREAMS as resources: the default ones first, then the opt-in ones."""
    built: Dict[str, DltResource] = {}
    for name, stream in STREAMS.items():
        for resource in SPECIAL_STREAMS.get(name, _plain)(name, run, built):
            resource.selected = stream.default
            built[resource.name] = resource
    return sorted(built.values(), key=lambda resource: not resource.selected)


def _plain(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
    """A plain stream: its endpoint read from the cursor on, or once per row of its parent."""
    stream = STREAMS[name]
    if stream.parent:
        return [_resource(name, _child_rows, run.reader(), name, data_from=built[stream.parent])]
    return [_resource(name, _stream_rows, run.reader(), name, run.incremental(stream))]


def _resource(
    stream_name: str,
    rows: Callable[..., Iterator[TDataItem]],
    *args: Any,
    table_name: Optional[str] = None,
    column_types: Optional[Mapping[str, Any]] = None,
    data_from: Optional[DltResource] = None,
    columns: Optional[Dict[str, TColumnSchema]] = None,
) -> DltResource:
    """The one factory: a row generator (with `data_from`, a transformer of the parent's rows) as a
    resource with the stream's key, disposition and typed columns, its pages as Arrow tables.

    Explicit `columns` (the reports) are hints on plain rows instead of Arrow tables.
    """
    stream = STREAMS[stream_name]
    table = table_name or stream_name
    hints: Dict[str, Any] = dict(
        name=table,
        primary_key=list(stream.primary_key),
        write_disposition=SNAPSHOT if stream.write_disposition == "replace" else stream.write_disposition,
        columns=columns or TABLE_COLUMNS[stream_name],
        parallelized=True,  # tables extract side by side on dlt's worker threads
    )
    resource: DltResource
    if data_from is None:
        resource = dlt.resource(_in_batches(rows), **hints)(*args)
    else:
        resource = dlt.transformer(_in_batches(rows), data_from=data_from, **hints)(*args)
    quiet_dlt_notices(table)
    if columns:
        return resource
    # each page leaves the generator as an Arrow table of the stream's columns (see tables.py)
    shape = TableShape(column_types or COLUMN_TYPES[stream_name])
    tables: DltResource = resource.add_step(PagesAsTables(shape), insert_at=1)
    return tables


def _in_batches(rows: Callable[..., Iterator[TDataItem]]) -> Callable[..., Iterator[TDataItem]]:
    """The generator's pages joined into batches of at least BATCH_ROWS rows.

    dlt's Arrow extractor merges each table's schema into the pipeline schema once per item, which
    cost about 15 ms per item for the profile tables' 90 columns: a profiles page holds only 100 rows.
    """

    @functools.wraps(rows)  # dlt reads the signature (the incremental argument) through __wrapped__
    def batched(*args: Any, **kwargs: Any) -> Iterator[TDataItem]:
        batch: List[TDataItem] = []
        tables: List[pa.Table] = []  # speed hook: the event pages of pages.py are tables already
        for item in rows(*args, **kwargs):
            if isinstance(item, pa.Table):
                tables.append(item)
                if sum(t.num_rows for t in tables) >= BATCH_ROWS:
                    yield pa.concat_tables(tables)
                    tables = []
                continue
            if not isinstance(item, list) or not item:
                yield item  # dlt's markers
                continue
            batch.extend(item)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch
        if tables:
            yield pa.concat_tables(tables)

    return batched


def _report(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
    stream = STREAMS[name]
    keys: Dict[str, TColumnSchema] = {key: {"data_type": "text"} for key in stream.primary_key}
    if stream.cursor:
        keys[stream.cursor] = {"data_type": "timestamp"}
    statistics: Dict[str, TColumnSchema] = {s: {"data_type": "double"} for s in REPORT_STATISTICS}
    args = (name, run.reader(), run.catalog, run.conversion, run.start, run.end, run.incremental(stream))
    return [_resource(name, _report_rows, *args, columns={**keys, **statistics})]


def _members(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
    """A membership table; how a run follows who joins and who leaves is in membership.py."""
    membership, removed = run.membership, run.removed_members
    args = (run.reader(), name, membership, removed, _replace_where_merge_cannot_delete)
    columns = member_column_types(name, membership, removed)
    resource = _resource(name, member_rows, *args, column_types=columns)
    if membership == "snapshot":
        resource.apply_hints(write_disposition=SNAPSHOT)
    else:
        resource.apply_hints(columns=member_column_hints(membership, removed))
    return [resource]


def _deleted_profiles(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
    """Only with the `deleted_profiles` option; it also writes to `profiles` and the event tables."""
    if run.deleted_profiles is None:
        return []
    options = (run.deleted_profiles, run.deletion_check_days, run.check_deletions_now)
    event_tables = [*run.metric_tables, "events"]
    args = (run.reader(), *options, run.deleted_profile_events, event_tables)
    return [_resource(name, deleted_profile_rows, *args)]


def _metric_tables(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
    """One table per metric name (METRIC_TABLES and extra_metrics), read on the `metric_events` row."""
    stream = STREAMS[name]
    tables = []
    for table, names in run.metric_tables.items():
        args = (run.reader(), run.catalog, names, run.incremental(stream), table in run.extra_tables)
        tables.append(_resource(name, _metric_event_rows, *args, table_name=table))
    return tables


def _one(rows: Callable[..., Iterator[TDataItem]], cursor: bool = False) -> Builder:
    """A builder of one table from a row function of (reader[, incremental])."""

    def build(name: str, run: Run, built: Mapping[str, DltResource]) -> List[DltResource]:
        args: List[Any] = [run.incremental(STREAMS[name])] if cursor else []
        return [_resource(name, rows, run.reader(), *args)]

    return build


def _capped_max(cap: datetime) -> Callable[[Sequence[Any]], Any]:
    """dlt's `max` for the cursor, but never beyond `cap`."""

    def capped_max(values: Sequence[Any]) -> Any:
        return min(max(values), cap)

    capped_max.cap = cap  # type: ignore[attr-defined]  # Window applies it to Arrow tables
    return capped_max


def _parse_date(name: str, value: Optional[TAnyDateTime]) -> Optional[datetime]:
    if value is None or value == "":
        return None
    try:
        return ensure_pendulum_datetime(value)
    except Exception:
        raise ValueError(
            f"{name}={value!r} is not a date: use ISO 8601, e.g. '2024-01-31' or"
            " '2024-01-31T08:00:00Z' (times without an offset are taken as UTC)."
        ) from None


# dlt's extract recurses once per resource that ends without an item in between, and from about
# 950 resources at once it exceeds Python's recursion limit; the `events` table holds every metric.
MAX_EXTRA_METRICS = 500


def metric_table_name(metric_name: str) -> str:
    """The table of a metric's events: its name in ASCII snake_case, any script transliterated.

    `anyascii` gives every script an ASCII reading ("Заказ оформлен" -> "Zakaz oformlen"); a name
    with none (only symbols) or longer than destinations allow ends in a stable hash of the name.
    """
    snake = re.sub(r"[^0-9a-z]+", "_", anyascii(metric_name).lower()).strip("_")
    digest = hashlib.sha1(metric_name.encode()).hexdigest()[:8]
    if not snake:
        return f"metric_{digest}"
    if snake[0].isdigit():
        snake = f"metric_{snake}"
    return snake if len(snake) <= 60 else f"{snake[:51].rstrip('_')}_{digest}"


def metric_tables_for(extra_metrics: Sequence[str]) -> Dict[str, Tuple[str, ...]]:
    """Table name -> metric name for each extra metric; names that would share a table are an error."""
    if isinstance(extra_metrics, str):
        raise ValueError(f"extra_metrics={extra_metrics!r} must be a list of metric names, not one string.")
    builtin = {table: " or ".join(map(repr, names)) for table, names in METRIC_TABLES.items()}
    own_tables = set(STREAMS) | set(REPORTS)
    tables: Dict[str, Tuple[str, ...]] = {}
    for name in extra_metrics:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"extra_metrics has an empty or non-text name ({name!r}).")
        table = metric_table_name(name)
        if table in own_tables:
            raise ValueError(
                f"Extra metric {name!r} would load into `{table}`, one of the source's own tables."
            )
        if table in builtin:
            raise ValueError(
                f"Extra metric {name!r} would load into `{table}`, the table of the metric {builtin[table]}."
            )
        if table in tables and tables[table] != (name,):
            raise ValueError(
                f"Extra metrics {tables[table][0]!r} and {name!r} would both load into table `{table}`:"
                " list each metric once (names are matched ignoring case)."
            )
        tables[table] = (name,)
    if len(tables) > MAX_EXTRA_METRICS:
        raise ValueError(
            f"{len(tables)} extra metrics are more than the {MAX_EXTRA_METRICS} tables a run can have;"
            " load the `events` table instead (every metric, with `metric_name`)."
        )
    return tables


def _bounds(cursor: Optional[Incremental[Any]]) -> Tuple[Optional[datetime], Optional[datetime]]:
    """The incremental window as datetimes: from the last loaded value (or start_date) to end_date."""
    if cursor is None:
        return None, None
    start, end = cursor.start_value, cursor.end_value
    return (
        ensure_pendulum_datetime(start) if start is not None else None,
        ensure_pendulum_datetime(end) if end is not None else None,
    )


def _stream_rows(reader: Reader, stream_name: str, cursor: Optional[Incremental[Any]]) -> Iterator[TDataItem]:
    yield dlt.mark.materialize_table_schema()
    yield from reader.read_split(Query(STREAMS[stream_name], *_bounds(cursor)), history.plan(cursor))


def _campaign_rows(reader: Reader, cursor: Incremental[Any]) -> Iterator[TDataItem]:
    # Klaviyo requires one channel per request in this revision; archived ones are asked for
    # explicitly so none are missed whatever the default is.
    yield dlt.mark.materialize_table_schema()
    start, end = _bounds(cursor)
    start = history.backfill_start(cursor, start)  # an earlier start_date reads what is missing
    queries = [
        Query(
            STREAMS["campaigns"],
            start,
            end,
            filters=(f"equals(messages.channel,'{channel}')", f"equals(archived,{archived})"),
            columns={"channel": channel},
        )
        for channel in CAMPAIGN_CHANNELS
        for archived in ("false", "true")
    ]
    yield from reader.fan_out([functools.partial(reader.pages, query) for query in queries])


def _global_exclusion_rows(reader: Reader) -> Iterator[TDataItem]:
    """Profiles suppressed from all email, one row each, with the latest reason and its time."""
    yield dlt.mark.materialize_table_schema()
    yield from _replace_where_merge_cannot_delete()
    seen = set()
    field = "subscriptions.email.marketing.suppression.reason"
    for reason in SUPPRESSION_REASONS:
        query = Query(STREAMS["global_exclusions"], filters=(f'equals({field},"{reason}")',))
        for rows in reader.pages(query):
            page = []
            for row in rows:
                if row["id"] in seen:  # suppressed for more than one reason
                    continue
                seen.add(row["id"])
                latest = _latest_suppression(row) or {"reason": reason, "timestamp": None}
                row["reason"] = latest.get("reason")
                # named apart from the event tables' `timestamp`, Klaviyo's epoch seconds
                row["suppressed_at"] = latest.get("timestamp")
                page.append(row)
            yield page


def _latest_suppression(row: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    marketing = (((row.get("subscriptions") or {}).get("email") or {}).get("marketing")) or {}
    entries = [e for e in marketing.get("suppression") or [] if isinstance(e, dict)]
    return max(entries, key=lambda e: e.get("timestamp") or "", default=None)


def _replace_where_merge_cannot_delete() -> Iterator[TDataItem]:
    """A snapshot table is replaced on destinations without a delete-insert merge (files without a
    table format), where dlt would turn SNAPSHOT into an append that keeps every run's rows."""
    try:
        capabilities = dlt.current.pipeline().destination.capabilities()
    except Exception:  # extract without a destination: the load decides with SNAPSHOT
        return
    strategies = capabilities.supported_merge_strategies
    if capabilities.merge_strategies_selector is not None:
        strategies = capabilities.merge_strategies_selector(strategies, table_schema={})
    if "delete-insert" not in strategies:
        yield dlt.mark.with_hints([], dlt.mark.make_hints(write_disposition="replace"))


def _child_rows(parents: List[TDataItem], reader: Reader, table: str) -> Iterator[TDataItem]:
    """The children of each parent row this run loaded (flow actions of updated flows, ...)."""
    if isinstance(parents, pa.Table):
        parent_ids = parents.column("id").to_pylist()
    elif isinstance(parents, list):
        parent_ids = [row["id"] for row in parents]
    else:  # dlt's marker that materializes the parent's empty table
        return
    stream = STREAMS[table]
    queries = [Query(stream, path_id=pid, columns={stream.parent_key: pid}) for pid in parent_ids]
    yield from reader.fan_out([functools.partial(reader.pages_unless_gone, query) for query in queries])


def _coupon_code_rows(reader: Reader) -> Iterator[TDataItem]:
    """Codes of every coupon; Klaviyo only lists codes filtered by coupon (or profile)."""
    yield dlt.mark.materialize_table_schema()
    coupon_ids = [
        item["id"] for page in reader.bounded(reader.client.paginate("coupons")) for item in page.data
    ]
    batches = [
        coupon_ids[i : i + COUPONS_PER_REQUEST] for i in range(0, len(coupon_ids), COUPONS_PER_REQUEST)
    ]
    queries = [
        Query(
            STREAMS["coupon_codes"], filters=(f"any(coupon.id,{json.dumps(batch, separators=(',', ':'))})",)
        )
        for batch in batches
    ]
    yield from reader.fan_out([functools.partial(reader.pages, query) for query in queries])


def _report_rows(
    table: str,
    reader: Reader,
    catalog: "MetricCatalog",
    conversion: Tuple[str, Optional[str]],
    start: Optional[datetime],
    end: Optional[datetime],
    cursor: Optional[Incremental[Any]] = None,
) -> Iterator[TDataItem]:
    """A reporting-API table: values over the last year, or a daily series from the cursor on.

    The reporting API allows 2 requests a minute and 225 a day; when the day's budget is spent
    Klaviyo answers with a wait of hours, and the table is skipped with a warning for this run.
    """
    yield dlt.mark.materialize_table_schema()
    report = REPORTS[table]
    metric_id = catalog.conversion_metric_id(*conversion)
    if metric_id is None:
        logger.warning(f"{table}: no metric named {conversion[0]!r} for conversions; skipped")
        return
    now = datetime.now(timezone.utc)
    until = min(end or now, now)
    since = start or (until - timedelta(days=REPORT_MAX_DAYS))
    if report.series:
        since = _bounds(cursor)[0] or since
        step = timedelta(days=SERIES_WINDOW_DAYS)
    else:
        since = max(since, until - timedelta(days=REPORT_MAX_DAYS))
        step = until - since
    window_start = since
    while window_start < until:
        window_end = min(window_start + step, until)
        body = _report_body(report, STREAMS[table].primary_key, metric_id, window_start, window_end)
        try:
            pages = reader.client.paginate(STREAMS[table].endpoint, body=body)
            for page in reader.bounded(pages):
                yield [row for document in page.data for row in _report_table_rows(report, document)]
        except KlaviyoQuotaExhausted as exc:
            logger.warning(f"{table}: Klaviyo's reporting budget is spent; skipped this run ({exc})")
            return
        window_start = window_end


def _report_body(
    report: Report, groupings: Sequence[str], metric_id: str, start: datetime, end: datetime
) -> Dict[str, Any]:
    attributes: Dict[str, Any] = {
        "statistics": list(REPORT_STATISTICS),
        "timeframe": {"start": filter_time(start), "end": filter_time(end)},
        "conversion_metric_id": metric_id,
        "group_by": [g for g in groupings if g != "date"],
    }
    if report.series:
        attributes["interval"] = "daily"
    return {"data": {"type": report.report_type, "attributes": attributes}}


def _report_table_rows(report: Report, document: Mapping[str, Any]) -> Iterator[Dict[str, Any]]:
    attributes = document.get("attributes") or {}
    for result in attributes.get("results") or []:
        groupings = result.get("groupings") or {}
        statistics = result.get("statistics") or {}
        if not report.series:
            yield {**groupings, **statistics}
            continue
        for index, day in enumerate(attributes.get("date_times") or []):
            values = {name: series[index] for name, series in statistics.items() if index < len(series)}
            yield {"date": datetime.fromisoformat(day), **groupings, **values}


class MetricCatalog:
    """The account's metrics, read once per run and shared by all event and report tables.

    Names are matched the way Klaviyo users type them: exactly, else ignoring case when that finds
    one name (said in a warning). A near miss of a name the user gave fails with the suggestion.
    """

    def __init__(self, client: KlaviyoClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._all: Optional[List[Dict[str, Any]]] = None
        self._conversion: Dict[Tuple[str, Optional[str]], Optional[str]] = {}

    def _metrics(self) -> List[Dict[str, Any]]:
        with self._lock:
            if self._all is None:
                self._all = [to_row(item) for page in self._client.paginate("metrics") for item in page.data]
            return self._all

    def named(self, name: str, strict: bool = False) -> List[Dict[str, Any]]:
        """The metrics called `name`, or [] (with a warning; with `strict` an error on a near miss)."""
        metrics = self._metrics()
        exact = [m for m in metrics if m.get("name") == name]
        if exact:
            return exact
        folded = [m for m in metrics if str(m.get("name") or "").casefold() == name.casefold()]
        spellings = sorted({str(m.get("name")) for m in folded})
        if len(spellings) > 1:
            raise ValueError(
                f"Metric name {name!r} matches {', '.join(map(repr, spellings))} ignoring case: give"
                " the exact name."
            )
        if folded:
            logger.warning(
                f"No metric is named exactly {name!r}; using {spellings[0]!r} (same name ignoring case)."
            )
            return folded
        close = difflib.get_close_matches(
            name.casefold(), [str(m.get("name") or "").casefold() for m in metrics], n=3, cutoff=0.8
        )
        suggestions = sorted(
            {str(m.get("name")) for m in metrics if str(m.get("name") or "").casefold() in close}
        )
        if strict and suggestions:
            raise ValueError(
                f"No metric named {name!r} in this account; did you mean {' or '.join(map(repr, suggestions))}?"
                " Fix the name in extra_metrics (--extra-metrics)."
            )
        return []

    def ids_for(self, names: Iterable[str], strict: bool = False) -> List[str]:
        """Metric ids for these names, preferring Klaviyo's own metric over same-named ones."""
        ids: List[str] = []
        for name in names:
            candidates = self.named(name, strict)
            builtin = [m for m in candidates if integration_key(m) == KLAVIYO_INTEGRATION_KEY]
            ids.extend(m["id"] for m in (builtin or candidates))
        return ids

    def conversion_metric_id(self, name: str, chosen_id: Optional[str]) -> Optional[str]:
        """The metric the reports count as conversions, decided once per run and logged.

        `chosen_id` (the `conversion_metric_id` option) wins. Otherwise, of the metrics called
        `name` (accounts often have several "Placed Order", e.g. from integrations `api` and
        `shopify`), the one with the most recent event: it is the one the store records now.
        Ties (no events) go to Klaviyo's own integration, then to the smallest id.
        """
        key = (name, chosen_id)
        with self._lock:
            if key in self._conversion:
                return self._conversion[key]
        metrics = self._metrics()
        if chosen_id:
            if not any(m["id"] == chosen_id for m in metrics):
                same_name = ", ".join(_describe_metric(m) for m in self.named(name)) or "none"
                raise ValueError(
                    f"conversion_metric_id={chosen_id!r} is not a metric of this account (metrics"
                    f" named {name!r}: {same_name})."
                )
            choice: Optional[str] = chosen_id
        else:
            candidates = self.named(name)
            latest = {m["id"]: self._latest_event(m["id"]) if len(candidates) > 1 else "" for m in candidates}
            # the smallest id among equals: sorted() is stable, also in reverse, so order by id first
            ranked = sorted(
                sorted(candidates, key=lambda m: m["id"]),
                key=lambda m: (latest[m["id"]] or "", integration_key(m) == KLAVIYO_INTEGRATION_KEY),
                reverse=True,
            )
            choice = ranked[0]["id"] if ranked else None
            if len(ranked) > 1:
                others = "; ".join(
                    f"{_describe_metric(m)}, last event {latest[m['id']] or 'none'}" for m in ranked[1:]
                )
                logger.warning(
                    f"Report tables count conversions of metric {_describe_metric(ranked[0])} (last event"
                    f" {latest[choice] or 'none'}): of the {len(ranked)} metrics named {name!r} it has the"
                    f" most recent event. Not used: {others}. Set conversion_metric_id to choose another."
                )
        with self._lock:
            self._conversion[key] = choice
        return choice

    def _latest_event(self, metric_id: str) -> Optional[str]:
        params = {
            "filter": f'equals(metric_id,"{metric_id}")',
            "sort": "-datetime",
            "fields[event]": "datetime",
        }
        pages = self._client.paginate("events", params, page_size=1)
        try:
            page = next(pages, None)
        finally:
            pages.close()  # type: ignore[attr-defined]
        if page is None or not page.data:
            return None
        return str((page.data[0].get("attributes") or {}).get("datetime") or "") or None


def _describe_metric(metric: Mapping[str, Any]) -> str:
    return f"{metric.get('name')!r} id {metric['id']} (integration {integration_key(metric) or 'unknown'})"


def _metric_event_rows(
    reader: Reader,
    catalog: MetricCatalog,
    names: Tuple[str, ...],
    cursor: Incremental[Any],
    strict: bool = False,
) -> Iterator[TDataItem]:
    """Events of the named metric(s), oldest first, from the incremental cursor on.

    `strict` (names the user gave) makes a near miss of a metric name an error instead of a warning.
    """
    yield dlt.mark.materialize_table_schema()
    metric_ids = catalog.ids_for(names, strict=strict)
    if not metric_ids:
        logger.warning(
            f"No metric named {' or '.join(repr(n) for n in names)} in this account: its table stays"
            " empty until Klaviyo records such an event (Klaviyo creates a metric with its first event)."
        )
    for metric_id in metric_ids:
        filters = (f'equals(metric_id,"{metric_id}")',)
        query = Query(STREAMS["metric_events"], *_bounds(cursor), filters=filters)
        yield from reader.read_split(query, history.plan(cursor))


# The streams with a builder of their own; every other row of STREAMS is built by `_plain`.
SPECIAL_STREAMS: Dict[str, Builder] = {
    "global_exclusions": _one(_global_exclusion_rows),
    "list_members": _members,
    "segment_members": _members,
    "deleted_profiles": _deleted_profiles,
    "campaigns": _one(_campaign_rows, cursor=True),
    "metric_events": _metric_tables,
    "coupon_codes": _one(_coupon_code_rows),
    **dict.fromkeys(REPORTS, _report),
    **MORE_STREAMS,  # profiles (predictive_analytics), profile counts, custom object records
}
