"""Streams that need more than a row of settings: profiles with predictive analytics (a lower rate
tier), each list's and segment's profile count (one request each), campaign recipient estimations
(one request per campaign), reviews (incremental without a server-side filter), the records of
each custom object type (one table per type).

Registered in `klaviyo_source` by `more_data_resources` and `profiles_with_predictive_analytics`.
"""

import functools
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List

import dlt
import pyarrow as pa
from dlt.common import logger
from dlt.common.typing import TDataItem
from dlt.extract.incremental import Incremental
from dlt.sources import DltResource

from .client import KlaviyoClient, KlaviyoNotFound, RateLimiter, RetryPolicy, interleave
from .settings import (
    COLUMN_TYPES,
    PREDICTIVE_ANALYTICS_COLUMNS,
    PREDICTIVE_ANALYTICS_TIER,
    STREAMS,
    TABLE_COLUMNS,
)


def more_data_resources(
    client: KlaviyoClient, window: Callable[[str], Incremental[Any]], workers: int, campaigns: DltResource
) -> List[DltResource]:
    """The opt-in tables of the account data beyond the original connector's (see README)."""
    from . import _as_tables, _resource, _stream_rows  # the package's factory; it imports this module

    estimations = dlt.transformer(
        recipient_estimation_rows,
        data_from=campaigns,
        name="campaign_recipient_estimations",
        primary_key="id",
        write_disposition="merge",
        columns=TABLE_COLUMNS["campaign_recipient_estimations"],
        parallelized=True,
    )(client, workers)
    return [
        _as_tables(estimations, COLUMN_TYPES["campaign_recipient_estimations"]),
        _resource("list_profile_counts", profile_count_rows, client, "list_profile_counts", "lists", workers),
        _resource(
            "segment_profile_counts",
            profile_count_rows,
            client,
            "segment_profile_counts",
            "segments",
            workers,
        ),
        _resource("reviews", review_rows, client, window("updated")),
        _resource("custom_object_types", _stream_rows, client, "custom_object_types", None),
        _resource("custom_object_records", custom_object_record_rows, client, workers),
    ]


def review_rows(client: KlaviyoClient, cursor: Incremental[Any]) -> Iterator[TDataItem]:
    """Reviews updated since the last run, newest first.

    Klaviyo sorts reviews by `updated` but filters them only on `created`, so the read goes back in
    time page by page and stops after the first page that reaches past the cursor: an unchanged
    account costs one request. dlt's incremental drops the rows of that page it already has.
    """
    from . import _bounds, to_row

    yield dlt.mark.materialize_table_schema()
    stream = STREAMS["reviews"]
    since, _ = _bounds(cursor)
    pages = client.paginate(stream.endpoint, stream.params)
    try:
        for page in pages:
            rows = [to_row(item, stream.cursor) for item in page.data]
            yield rows
            if since is not None and rows and rows[-1]["updated"] < since:
                break
    finally:
        pages.close()  # type: ignore[attr-defined]


def custom_object_record_rows(client: KlaviyoClient, workers: int) -> Iterator[TDataItem]:
    """Every record of every custom object type, each type into its own table (see `object_tables`).

    Klaviyo gives records no timestamp, sort or filter, so each run reads them all: at 60 requests a
    minute of 100 records, 6,000 records a minute.
    """
    from . import _read, _replace_where_merge_cannot_delete, to_row

    yield from _replace_where_merge_cannot_delete()
    types = [to_row(item) for page in client.paginate("object_types") for item in page.data]
    tables = object_tables(types)

    def records_of(type_id: str) -> Iterator[TDataItem]:
        for rows in _read(
            client, STREAMS["custom_object_records"], path_id=type_id, columns={"object_type_id": type_id}
        ):
            yield dlt.mark.with_table_name(rows, tables[type_id])

    yield from interleave([functools.partial(records_of, t["id"]) for t in types], workers)


def object_tables(types: List[Dict[str, Any]]) -> Dict[str, str]:
    """Object type id -> its table: `custom_object_` and the title in snake_case, any script
    transliterated; types whose titles give the same name get their id appended, each."""
    from . import metric_table_name

    names = {t["id"]: "custom_object_" + metric_table_name(str(t.get("title") or t["id"])) for t in types}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {tid: f"{name}_{tid.lower()}" if name in shared else name for tid, name in names.items()}


def recipient_estimation_rows(
    campaigns: List[TDataItem], client: KlaviyoClient, workers: int
) -> Iterator[TDataItem]:
    """The recipient estimate of each campaign this run loaded (new or updated campaigns)."""
    from . import _read

    if isinstance(campaigns, pa.Table):
        campaign_ids = campaigns.column("id").to_pylist()
    elif isinstance(campaigns, list):
        campaign_ids = [row["id"] for row in campaigns]
    else:  # dlt's marker that materializes the parent's empty table
        return

    def estimate(campaign_id: str) -> Iterator[TDataItem]:
        try:
            yield from _read(client, STREAMS["campaign_recipient_estimations"], path_id=campaign_id)
        except KlaviyoNotFound:  # deleted since, or never estimated
            logger.info(f"campaign {campaign_id} has no recipient estimation; skipped")

    yield from interleave([functools.partial(estimate, c) for c in campaign_ids], workers)


def profiles_with_predictive_analytics(
    api_key: str, base_url: str, revision: str, retry: RetryPolicy, cursor: Incremental[Any], workers: int
) -> DltResource:
    """The profiles table with each profile's `predictive_analytics` (CLV, churn, next order).

    Klaviyo serves these at 10/s and 150/min instead of 75/s and 750/min, so the table reads through
    a client of its own whose profiles limiter has that tier (global_exclusions keeps the full one).
    """
    from . import _read_split, _resource

    client = KlaviyoClient(api_key, base_url, revision, retry)
    tier = PREDICTIVE_ANALYTICS_TIER
    client.limiters[tier.path] = RateLimiter(tier.burst_per_second, tier.steady_per_minute)
    fields = f"{STREAMS['profiles'].params['additional-fields[profile]']},predictive_analytics"
    stream = replace(
        STREAMS["profiles"], params={**STREAMS["profiles"].params, "additional-fields[profile]": fields}
    )

    def profile_rows(client: KlaviyoClient, cursor: Incremental[Any], workers: int) -> Iterator[TDataItem]:
        yield dlt.mark.materialize_table_schema()
        yield from _read_split(client, stream, cursor, workers)

    columns = {**COLUMN_TYPES["profiles"], **PREDICTIVE_ANALYTICS_COLUMNS}
    resource = _resource("profiles", profile_rows, client, cursor, workers, column_types=columns)
    resource.apply_hints(columns={name: {"data_type": t} for name, t in PREDICTIVE_ANALYTICS_COLUMNS.items()})
    return resource


def profile_count_rows(client: KlaviyoClient, table: str, parents: str, workers: int) -> Iterator[TDataItem]:
    """Each list's (segment's) `profile_count` now: one request per list, at Klaviyo's 1/s, 15/min."""
    from . import _read

    yield dlt.mark.materialize_table_schema()
    kind = parents[:-1]
    ids = [item["id"] for page in client.paginate(parents, {f"fields[{kind}]": "name"}) for item in page.data]
    counted_at = datetime.now(timezone.utc)

    def count(parent_id: str) -> Iterator[TDataItem]:
        try:
            yield from _read(client, STREAMS[table], path_id=parent_id, columns={"counted_at": counted_at})
        except KlaviyoNotFound:
            logger.info(f"{kind} {parent_id} was deleted while counting; skipped")

    yield from interleave([functools.partial(count, i) for i in ids], workers)
