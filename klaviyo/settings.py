"""Klaviyo API constants: endpoints with their page sizes and rate limits, streams, metric tables.

Values come from Klaviyo's OpenAPI spec for revision 2026-07-15 (`x-klaviyo-ratelimit`, the
`page[size]` maximum of each operation).
"""

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from dlt.common.data_types import TDataType
from dlt.common.schema.typing import TColumnSchema, TWriteDisposition

DEFAULT_BASE_URL = "https://a.klaviyo.com/api"
DEFAULT_REVISION = "2026-07-15"

# A 429 asking us to wait longer than this (seconds) fails the run instead of sleeping: the
# reporting endpoints' daily quota answers with waits of hours.
DEFAULT_MAX_RETRY_AFTER = 300.0

# Requests one table may have in flight; the rate limiter keeps any number within Klaviyo's limits.
# Events allow 58 requests/s (3,500/min) of 1,000 events; at ~0.5 s per such page (a 1.1 MB body
# with its includes) reaching that takes 58 x 0.5 = 29 in flight: 32. Fewer cap every table at
# workers / latency (4 gave ~8 req/s at 0.5 s, a seventh of Klaviyo's limit).
DEFAULT_WORKERS = 32

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
    scopes: Tuple[str, ...] = ()  # the API key's read scopes this operation needs (`x-klaviyo-scopes`)


ENDPOINTS: Dict[str, Endpoint] = {
    # name: path, maximum page size, burst/s, steady/min, read scopes (all from the spec)
    "accounts": Endpoint("accounts", None, 1, 15, ("accounts:read",)),
    "metrics": Endpoint("metrics", None, 10, 150, ("metrics:read",)),
    "events": Endpoint("events", 1000, 350, 3500, ("events:read",)),
    "profiles": Endpoint("profiles", 100, 75, 750, ("profiles:read",)),
    "lists": Endpoint("lists", 10, 75, 750, ("lists:read",)),
    "list_profiles": Endpoint("lists/{id}/profiles", 100, 75, 750, ("lists:read", "profiles:read")),
    "campaigns": Endpoint("campaigns", 100, 10, 150, ("campaigns:read",)),
    "campaign_messages": Endpoint("campaigns/{id}/campaign-messages", None, 10, 150, ("campaigns:read",)),
    "segments": Endpoint("segments", 10, 75, 750, ("segments:read",)),
    "segment_profiles": Endpoint("segments/{id}/profiles", 100, 75, 750, ("profiles:read", "segments:read")),
    "list_profile_ids": Endpoint(
        "lists/{id}/relationships/profiles", 100, 75, 750, ("lists:read", "profiles:read")
    ),
    "segment_profile_ids": Endpoint(
        "segments/{id}/relationships/profiles", 100, 75, 750, ("profiles:read", "segments:read")
    ),
    "flows": Endpoint("flows", 50, 3, 60, ("flows:read",)),
    "flow_actions": Endpoint("flows/{id}/flow-actions", 50, 3, 60, ("flows:read",)),
    "flow_messages": Endpoint("flow-actions/{id}/flow-messages", 50, 3, 60, ("flows:read",)),
    "templates": Endpoint("templates", 10, 75, 750, ("templates:read",)),
    "tags": Endpoint("tags", 50, 3, 60, ("tags:read",)),
    "tag_groups": Endpoint("tag-groups", 25, 3, 60, ("tags:read",)),
    "catalog_items": Endpoint("catalog-items", 100, 350, 3500, ("catalogs:read",)),
    "catalog_variants": Endpoint("catalog-variants", 100, 350, 3500, ("catalogs:read",)),
    "catalog_categories": Endpoint("catalog-categories", 100, 350, 3500, ("catalogs:read",)),
    "coupons": Endpoint("coupons", 100, 75, 750, ("coupons:read",)),
    "coupon_codes": Endpoint("coupon-codes", 100, 350, 3500, ("coupon-codes:read",)),
    "forms": Endpoint("forms", 100, 3, 60, ("forms:read",)),
    "images": Endpoint("images", 100, 10, 150, ("images:read",)),
    # reporting API: also 225 a day, which Klaviyo enforces with a 429 of a very long Retry-After
    "campaign_values_report": Endpoint("campaign-values-reports", None, 1, 2, ("campaigns:read",)),
    "flow_values_report": Endpoint("flow-values-reports", None, 1, 2, ("flows:read",)),
    "flow_series_report": Endpoint("flow-series-reports", None, 1, 2, ("flows:read",)),
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
    "list_members": Stream(
        "list_profiles",
        ("list_id", "id"),
        cursor="joined_group_at",  # large lists are read in windows on it, in parallel
        write_disposition="replace",
        params={"sort": "joined_group_at"},
    ),
    "campaigns": Stream("campaigns", ("id",), cursor="updated_at", params={"sort": "updated_at"}),
    "metrics": Stream("metrics", ("id",)),
    # every metric in one table, with the metric's name and the attribution resolved from `include`
    "events": Stream(
        "events", ("id",), cursor="datetime", params={"sort": "datetime", "include": "metric,attributions"}
    ),
    # the events of one metric per table (METRIC_TABLES and extra_metrics)
    "metric_events": Stream("events", ("id",), cursor="datetime", params={"sort": "datetime"}),
    "segments": Stream(
        "segments",
        ("id",),
        cursor="updated",
        cursor_filter=("greater-than", None),
        params={"sort": "updated"},
    ),
    "segment_members": Stream(
        "segment_profiles",
        ("segment_id", "id"),
        cursor="joined_group_at",
        write_disposition="replace",
        params={"sort": "joined_group_at"},
    ),
    # children of campaigns and flows: only parents updated since the last run are walked again
    "campaign_messages": Stream("campaign_messages", ("id",)),
    "flows": Stream("flows", ("id",), cursor="updated", params={"sort": "updated"}),
    "flow_actions": Stream("flow_actions", ("id",)),
    "flow_messages": Stream("flow_messages", ("id",)),
    "templates": Stream("templates", ("id",), cursor="updated", params={"sort": "updated"}),
    "tags": Stream("tags", ("id",)),
    "tag_groups": Stream("tag_groups", ("id",)),
    "catalog_items": Stream("catalog_items", ("id",)),
    "catalog_variants": Stream("catalog_variants", ("id",)),
    "catalog_categories": Stream("catalog_categories", ("id",)),
    "coupons": Stream("coupons", ("id",)),
    # Klaviyo requires a coupon filter: read per batch of coupons
    "coupon_codes": Stream("coupon_codes", ("id",)),
    "forms": Stream("forms", ("id",), cursor="updated_at", params={"sort": "updated_at"}),
    "images": Stream("images", ("id",), cursor="updated_at", params={"sort": "updated_at"}),
}


@dataclass(frozen=True)
class Report:
    """A table from Klaviyo's reporting API: one POST per time window, rows per message."""

    endpoint: str  # key of ENDPOINTS
    report_type: str  # the JSON:API `data.type` of the request body
    groupings: Tuple[str, ...]  # the primary key, with `date` first for series
    series: bool = False


REPORTS: Dict[str, Report] = {
    "campaign_values_report": Report(
        "campaign_values_report",
        "campaign-values-report",
        ("campaign_id", "campaign_message_id", "send_channel"),
    ),
    "flow_values_report": Report(
        "flow_values_report", "flow-values-report", ("flow_id", "flow_message_id", "send_channel")
    ),
    "flow_series_report": Report(
        "flow_series_report",
        "flow-series-report",
        ("date", "flow_id", "flow_message_id", "send_channel"),
        series=True,
    ),
}
REPORT_STATISTICS = (
    "recipients",
    "delivered",
    "bounced",
    "opens",
    "opens_unique",
    "clicks",
    "clicks_unique",
    "unsubscribes",
    "spam_complaints",
    "conversions",
    "conversion_uniques",
    "conversion_value",
)
DEFAULT_CONVERSION_METRIC = "Placed Order"
REPORT_MAX_DAYS = 365  # values reports cover at most a year
# daily series allow 60 days per request; Klaviyo rounds the end up to the end of its hour
SERIES_WINDOW_DAYS = 59

# the ids-only endpoint that reconciles each membership table
MEMBER_IDS_ENDPOINTS = {"list_members": "list_profile_ids", "segment_members": "segment_profile_ids"}

# coupon ids per coupon-codes request (an `any(coupon.id,[...])` list)
COUPONS_PER_REQUEST = 50

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

# The columns of each stream's table: every attribute the spec of this revision defines, typed as the
# spec types it (nested objects it defines are flattened to `parent__child`), plus the columns the
# source adds (relations as `<name>_id`, parent ids, resolved names). `json` columns hold what the
# spec leaves free-form (customer-defined `properties` / `event_properties`, definitions, lists)
# with keys exactly as Klaviyo spells them. Anything a page holds beyond this, or a value that does
# not fit its column's type, is kept in `extra_attributes` (JSON, as Klaviyo sent it).
EXTRA_ATTRIBUTES = "extra_attributes"
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
    "location__address1": "text",
    "location__address2": "text",
    "location__city": "text",
    "location__country": "text",
    "location__latitude": "json",  # the spec allows a string or a number
    "location__longitude": "json",
    "location__region": "text",
    "location__zip": "text",
    "location__timezone": "text",
    "location__ip": "text",
    "properties": "json",
}
# the consent fields the spec gives email open tracking and each WhatsApp kind alike
_CHANNEL_CONSENT: Dict[str, TDataType] = {
    "consent": "text",
    "consent_timestamp": "timestamp",
    "last_updated": "timestamp",
    "created_timestamp": "timestamp",
    "metadata": "json",
    "can_receive": "bool",
    "valid_until": "timestamp",
}
# `additional-fields[profile]=subscriptions`, per channel and kind: the spec's fields of each
_SUBSCRIPTION_FIELDS: Dict[str, Dict[str, TDataType]] = {
    "email__marketing": {
        "can_receive_email_marketing": "bool",
        "consent": "text",
        "consent_timestamp": "timestamp",
        "last_updated": "timestamp",
        "method": "text",
        "method_detail": "text",
        "custom_method_detail": "text",
        "double_optin": "bool",
        "suppression": "json",
        "list_suppressions": "json",
    },
    "email__open_tracking": _CHANNEL_CONSENT,
    **{
        f"sms__{kind}": {
            f"can_receive_sms_{kind}": "bool",
            "consent": "text",
            "consent_timestamp": "timestamp",
            "method": "text",
            "method_detail": "text",
            "last_updated": "timestamp",
        }
        for kind in ("marketing", "transactional")
    },
    "mobile_push__marketing": {
        "can_receive_push_marketing": "bool",
        "consent": "text",
        "consent_timestamp": "timestamp",
    },
    **{
        f"whatsapp__{kind}": {**_CHANNEL_CONSENT, "phone_number": "text"}
        for kind in ("marketing", "transactional", "conversational")
    },
}
_SUBSCRIPTION_COLUMNS: Dict[str, TDataType] = {
    f"subscriptions__{group}__{name}": data_type
    for group, fields in _SUBSCRIPTION_FIELDS.items()
    for name, data_type in fields.items()
}
_COLUMN_TYPES: Dict[str, Dict[str, TDataType]] = {
    "profiles": {**_PROFILE_COLUMNS, **_SUBSCRIPTION_COLUMNS},
    "global_exclusions": {
        **_PROFILE_COLUMNS,
        **_SUBSCRIPTION_COLUMNS,
        "reason": "text",
        "suppressed_at": "timestamp",
    },
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
        "audiences__included": "json",
        "audiences__excluded": "json",
        "send_options": "json",
        "tracking_options": "json",
        "send_strategy": "json",
    },
    "metrics": {
        "id": "text",
        "name": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "integration": "json",
    },
    "segments": {
        "id": "text",
        "name": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "is_active": "bool",
        "is_processing": "bool",
        "is_starred": "bool",
        "definition": "json",
    },
    "segment_members": {**_PROFILE_COLUMNS, "segment_id": "text", "joined_group_at": "timestamp"},
    "campaign_messages": {
        "id": "text",
        "campaign_id": "text",
        "created_at": "timestamp",
        "updated_at": "timestamp",
        "definition": "json",
        "send_times": "json",
    },
    "flows": {
        "id": "text",
        "name": "text",
        "status": "text",
        "archived": "bool",
        "trigger_type": "text",
        "created": "timestamp",
        "updated": "timestamp",
    },
    "flow_actions": {
        "id": "text",
        "flow_id": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "definition": "json",
    },
    "flow_messages": {
        "id": "text",
        "flow_action_id": "text",
        "channel": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "definition": "json",
    },
    "templates": {
        "id": "text",
        "name": "text",
        "editor_type": "text",
        "html": "text",
        "text": "text",
        "amp": "text",
        "definition": "json",
        "created": "timestamp",
        "updated": "timestamp",
    },
    "tags": {"id": "text", "name": "text", "tag_group_id": "text"},
    "tag_groups": {"id": "text", "name": "text", "exclusive": "bool", "default": "bool"},
    "catalog_items": {
        "id": "text",
        "external_id": "text",
        "title": "text",
        "description": "text",
        "price": "double",
        "url": "text",
        "image_full_url": "text",
        "image_thumbnail_url": "text",
        "images": "json",
        "custom_metadata": "json",
        "published": "bool",
        "created": "timestamp",
        "updated": "timestamp",
    },
    "catalog_variants": {
        "id": "text",
        "external_id": "text",
        "sku": "text",
        "title": "text",
        "description": "text",
        "inventory_policy": "bigint",
        "inventory_quantity": "double",
        "price": "double",
        "url": "text",
        "image_full_url": "text",
        "image_thumbnail_url": "text",
        "images": "json",
        "custom_metadata": "json",
        "published": "bool",
        "created": "timestamp",
        "updated": "timestamp",
    },
    "catalog_categories": {"id": "text", "external_id": "text", "name": "text", "updated": "timestamp"},
    "coupons": {"id": "text", "external_id": "text", "description": "text", "monitor_configuration": "json"},
    "coupon_codes": {
        "id": "text",
        "unique_code": "text",
        "expires_at": "timestamp",
        "status": "text",
        "coupon_id": "text",
        "profile_id": "text",
    },
    "forms": {
        "id": "text",
        "name": "text",
        "status": "text",
        "ab_test": "bool",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
    "images": {
        "id": "text",
        "name": "text",
        "image_url": "text",
        "format": "text",
        "size": "bigint",
        "hidden": "bool",
        "updated_at": "timestamp",
    },
    "events": {
        "id": "text",
        "datetime": "timestamp",
        "timestamp": "bigint",
        "uuid": "text",
        "event_properties": "json",
        "metric_id": "text",
        "profile_id": "text",
        "metric_name": "text",
        "metric_integration": "text",
        "attributed_event_id": "text",
        "campaign_id": "text",
        "campaign_message_id": "text",
        "flow_id": "text",
        "flow_message_id": "text",
    },
}
_COLUMN_TYPES["metric_events"] = {
    name: data_type
    for name, data_type in _COLUMN_TYPES["events"].items()
    if name in ("id", "datetime", "timestamp", "uuid", "event_properties", "metric_id", "profile_id")
}
for _columns in _COLUMN_TYPES.values():
    _columns[EXTRA_ATTRIBUTES] = "json"
COLUMN_TYPES: Mapping[str, Mapping[str, TDataType]] = _COLUMN_TYPES
TABLE_COLUMNS: Dict[str, Dict[str, TColumnSchema]] = {
    stream: {name: {"data_type": data_type} for name, data_type in columns.items()}
    for stream, columns in _COLUMN_TYPES.items()
}
