"""Klaviyo API constants: endpoints with their page sizes and rate limits, streams, metric tables.

Values come from Klaviyo's OpenAPI spec for revision 2026-07-15 (`x-klaviyo-ratelimit`, the
`page[size]` maximum of each operation).
"""

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from dlt.common.schema.typing import TColumnSchema, TDataType, TWriteDisposition

DEFAULT_BASE_URL = "https://a.klaviyo.com/api"
DEFAULT_REVISION = "2026-07-15"

# A 429 asking us to wait longer than this (seconds) fails the run instead of sleeping: the
# reporting endpoints' daily quota answers with waits of hours.
DEFAULT_MAX_RETRY_AFTER = 300.0

# Requests one table may have in flight; the rate limiter keeps any number within Klaviyo's limits.
DEFAULT_WORKERS = 4

# Each run reads events again from this long before the previous run started, for events that
# reach Klaviyo late.
DEFAULT_EVENT_LOOKBACK_SECONDS = 3600.0


@dataclass(frozen=True)
class Endpoint:
    """One Klaviyo operation: its path under the base URL and its limits."""

    path: str
    page_size: Optional[int]  # the operation's maximum page[size]; None where it takes none
    burst_per_second: int
    steady_per_minute: int


ENDPOINTS: Dict[str, Endpoint] = {
    # name                 path                        page  burst/s steady/min
    "accounts": Endpoint("accounts", None, 1, 15),
    "metrics": Endpoint("metrics", None, 10, 150),
    "events": Endpoint("events", 1000, 350, 3500),
    "profiles": Endpoint("profiles", 100, 75, 750),
    "lists": Endpoint("lists", 10, 75, 750),
    "list_profiles": Endpoint("lists/{id}/profiles", 100, 75, 750),
    "campaigns": Endpoint("campaigns", 100, 10, 150),
}


@dataclass(frozen=True)
class Stream:
    """A table loaded from one endpoint: how rows are keyed and how the run resumes."""

    endpoint: str  # key of ENDPOINTS
    primary_key: Tuple[str, ...]
    cursor: Optional[str] = None  # attribute the incremental load follows
    # filter operators the endpoint allows on the cursor: (lower bound, upper bound)
    cursor_filter: Tuple[str, Optional[str]] = ("greater-or-equal", "less-than")
    write_disposition: TWriteDisposition = "merge"
    params: Mapping[str, str] = field(default_factory=dict)


# The table of streams. Events of one metric per table are listed in METRIC_TABLES.
STREAMS: Dict[str, Stream] = {
    "profiles": Stream(
        "profiles",
        ("id",),
        cursor="updated",
        cursor_filter=("greater-than", "less-than"),  # profiles allow strict bounds only
        params={"sort": "updated", "additional-fields[profile]": "subscriptions"},
    ),
    # full snapshot each run, so profiles that are no longer suppressed leave the table
    "global_exclusions": Stream(
        "profiles",
        ("id",),
        write_disposition="replace",
        params={"additional-fields[profile]": "subscriptions"},
    ),
    "lists": Stream(
        "lists", ("id",), cursor="updated", cursor_filter=("greater-than", None), params={"sort": "updated"}
    ),
    # full snapshot each run, so members who left a list leave the table
    "list_members": Stream("list_profiles", ("list_id", "id"), write_disposition="replace"),
    "campaigns": Stream("campaigns", ("id",), cursor="updated_at", params={"sort": "updated_at"}),
    "metrics": Stream("metrics", ("id",)),
    "events": Stream("events", ("id",), cursor="datetime", params={"sort": "datetime"}),
}

# Tables of the original connector, each the events of Klaviyo's built-in metric(s) of that name.
METRIC_TABLES: Dict[str, Tuple[str, ...]] = {
    "bounce": ("Bounced Email",),
    "click": ("Clicked Email",),
    "dropped_email": ("Dropped Email",),
    "mark_as_spam": ("Marked Email as Spam",),
    "receive": ("Received Email",),
    # accounts on Klaviyo's newer consent model record "Unsubscribed from Email Marketing"
    "unsubscribe": ("Unsubscribed", "Unsubscribed from Email Marketing"),
}

KLAVIYO_INTEGRATION_KEY = "klaviyo"

CAMPAIGN_CHANNELS = ("email", "sms", "mobile_push")

SUPPRESSION_REASONS = (
    "HARD_BOUNCE",
    "INVALID_EMAIL",
    "SPAM_COMPLAINT",
    "UNSUBSCRIBE",
    "USER_SUPPRESSED",
)

# Typed base columns of each stream's table, so every table exists with the right types even when
# Klaviyo returns no rows for it. Further attributes become columns as they appear.
_PROFILE_COLUMNS: Dict[str, TDataType] = {
    "id": "text",
    "email": "text",
    "phone_number": "text",
    "external_id": "text",
    "first_name": "text",
    "last_name": "text",
    "organization": "text",
    "locale": "text",
    "title": "text",
    "image": "text",
    "created": "timestamp",
    "updated": "timestamp",
    "last_event_date": "timestamp",
}
_COLUMN_TYPES: Dict[str, Dict[str, TDataType]] = {
    "profiles": _PROFILE_COLUMNS,
    "global_exclusions": {**_PROFILE_COLUMNS, "reason": "text", "timestamp": "timestamp"},
    "lists": {
        "id": "text",
        "name": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "opt_in_process": "text",
    },
    "list_members": {**_PROFILE_COLUMNS, "list_id": "text", "joined_group_at": "timestamp"},
    "campaigns": {
        "id": "text",
        "name": "text",
        "status": "text",
        "archived": "bool",
        "channel": "text",
        "created_at": "timestamp",
        "scheduled_at": "timestamp",
        "updated_at": "timestamp",
        "send_time": "timestamp",
    },
    "metrics": {"id": "text", "name": "text", "created": "timestamp", "updated": "timestamp"},
    "events": {
        "id": "text",
        "datetime": "timestamp",
        "timestamp": "bigint",
        "uuid": "text",
        "metric_id": "text",
        "profile_id": "text",
    },
}
TABLE_COLUMNS: Dict[str, Dict[str, TColumnSchema]] = {
    stream: {name: {"data_type": data_type} for name, data_type in columns.items()}
    for stream, columns in _COLUMN_TYPES.items()
}
