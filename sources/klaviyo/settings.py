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
DEFAULT_WORKERS = 32

# A table with a longer backlog loads it in committed chunks of about this many rows, one per run.
DEFAULT_CHUNK_ROWS = 500_000

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
    # (query parameter, value) of a lower tier: the limits of requests whose parameter lists the value
    tier: Optional[Tuple[str, str]] = None


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
    "push_tokens": Endpoint("push-tokens", 100, 10, 150, ("profiles:read", "push-tokens:read")),
    "reviews": Endpoint("reviews", 100, 10, 150, ("reviews:read",)),
    "campaign_recipient_estimations": Endpoint(
        "campaign-recipient-estimations/{id}", None, 10, 150, ("campaigns:read",)
    ),
    "object_types": Endpoint("object-types", None, 3, 60, ("custom-objects:read",)),  # one page: no paging
    "object_records": Endpoint("object-types/{id}/object-records", 100, 3, 60, ("custom-objects:read",)),
    # lower tiers Klaviyo applies to a request asking for these `additional-fields` (the spec's
    # descriptions); the client's limiter picks them by the request's query
    "profiles_predictive_analytics": Endpoint(
        "profiles", 100, 10, 150, ("profiles:read",), ("additional-fields[profile]", "predictive_analytics")
    ),
    "list_profile_count": Endpoint(
        "lists/{id}", None, 1, 15, ("lists:read",), ("additional-fields[list]", "profile_count")
    ),
    "segment_profile_count": Endpoint(
        "segments/{id}", None, 1, 15, ("segments:read",), ("additional-fields[segment]", "profile_count")
    ),
    # reporting API: also 225 a day, which Klaviyo enforces with a 429 of a very long Retry-After
    "campaign_values_report": Endpoint("campaign-values-reports", None, 1, 2, ("campaigns:read",)),
    "flow_values_report": Endpoint("flow-values-reports", None, 1, 2, ("flows:read",)),
    "flow_series_report": Endpoint("flow-series-reports", None, 1, 2, ("flows:read",)),
}


@dataclass(frozen=True)
class Stream:
    """A table loaded from one endpoint: how rows are keyed, how the run resumes, how it is read."""

    endpoint: str  # key of ENDPOINTS
    primary_key: Tuple[str, ...] = ("id",)
    cursor: Optional[str] = None  # attribute the rows are sorted on and the incremental load follows
    # filter operators the server allows on the cursor (lower bound, upper bound); a None bound the
    # server cannot filter on is applied to the rows read instead
    cursor_filter: Tuple[Optional[str], Optional[str]] = ("greater-or-equal", "less-than")
    descending: bool = False  # sorted newest first: read down to the lower bound, then stop
    write_disposition: TWriteDisposition = "merge"  # "replace": a full snapshot each run
    parent: Optional[str] = None  # the stream read once per row of (its rows get `<parent>_id`)
    default: bool = False  # loaded by a bare run; the others are opt-in with `with_resources(...)`
    windows: bool = False  # a long range is read in parallel windows on the cursor
    lookback: bool = False  # each run reads again from `lookback_seconds` before the previous one
    params: Mapping[str, str] = field(default_factory=dict)  # `sort` comes from the cursor

    @property
    def parent_key(self) -> str:
        """The column naming the parent row: `list_id` for a child of `lists`."""
        assert self.parent, "only a fan-out has a parent"
        return self.parent[:-1] + "_id"

    @property
    def incremental(self) -> bool:
        """Whether runs resume from the cursor (snapshots read everything, in cursor order)."""
        return self.cursor is not None and self.write_disposition != "replace"


_STRICT = ("greater-than", "less-than")  # profiles allow strict bounds only
_SINCE = ("greater-than", None)  # lists and segments allow no upper bound
_SUBSCRIPTIONS = {"additional-fields[profile]": "subscriptions"}

# The table of streams. Tables named in SPECIAL_STREAMS (klaviyo/__init__.py) are built by their own
# function; every other one by the generic factory. "metric_events" is the template of the event
# tables of one metric each (METRIC_TABLES, extra_metrics).
# fmt: off
STREAMS: Dict[str, Stream] = {
    "profiles": Stream("profiles", cursor="updated", cursor_filter=_STRICT, default=True, windows=True, lookback=True, params=_SUBSCRIPTIONS),
    # full snapshot each run, so profiles that are no longer suppressed leave the table
    "global_exclusions": Stream("profiles", write_disposition="replace", default=True, params=_SUBSCRIPTIONS),
    "lists": Stream("lists", cursor="updated", cursor_filter=_SINCE, default=True),
    # new joins each run, who left found by the checks of membership.py (membership="snapshot": replaced)
    "list_members": Stream("list_profiles", ("list_id", "id"), "joined_group_at", parent="lists", default=True, windows=True),
    "campaigns": Stream("campaigns", cursor="updated_at", default=True),  # one read per channel
    "metrics": Stream("metrics", default=True),
    # only with the `deleted_profiles` option: a periodic read of every profile's id (deletions.py)
    "deleted_profiles": Stream("profiles", default=True, params={"fields[profile]": "id"}),
    "metric_events": Stream("events", cursor="datetime", default=True, windows=True, lookback=True),
    # every metric in one table, with the metric's name and the attribution resolved from `include`
    "events": Stream("events", cursor="datetime", windows=True, lookback=True, params={"include": "metric,attributions"}),
    "segments": Stream("segments", cursor="updated", cursor_filter=_SINCE),
    "segment_members": Stream("segment_profiles", ("segment_id", "id"), "joined_group_at", parent="segments", windows=True),
    # children: only the parents this run loads (updated since the last run) are walked again
    "campaign_messages": Stream("campaign_messages", parent="campaigns"),
    "flows": Stream("flows", cursor="updated"),
    "flow_actions": Stream("flow_actions", parent="flows"),
    "flow_messages": Stream("flow_messages", parent="flow_actions"),
    "templates": Stream("templates", cursor="updated", windows=True),
    "tags": Stream("tags"),
    "tag_groups": Stream("tag_groups"),
    "catalog_items": Stream("catalog_items"),
    "catalog_variants": Stream("catalog_variants"),
    "catalog_categories": Stream("catalog_categories"),
    "coupons": Stream("coupons"),
    "coupon_codes": Stream("coupon_codes"),  # Klaviyo requires a coupon filter: read per batch of coupons
    "forms": Stream("forms", cursor="updated_at"),
    "images": Stream("images", cursor="updated_at"),
    "push_tokens": Stream("push_tokens"),
    # the reporting API: one POST per time window; the primary key is the report's grouping
    "campaign_values_report": Stream("campaign_values_report", ("campaign_id", "campaign_message_id", "send_channel")),
    "flow_values_report": Stream("flow_values_report", ("flow_id", "flow_message_id", "send_channel")),
    "flow_series_report": Stream("flow_series_report", ("date", "flow_id", "flow_message_id", "send_channel"), "date"),
    # the account itself: one row (timezone, currency, sender)
    "accounts": Stream("accounts"),
    # Klaviyo sorts reviews by `updated` but filters them only on `created`: newest first, down to the cursor
    "reviews": Stream("reviews", cursor="updated", cursor_filter=(None, None), descending=True),
    # one per campaign this run loads; `id` is the campaign's
    "campaign_recipient_estimations": Stream("campaign_recipient_estimations", parent="campaigns"),
    # Klaviyo gives `profile_count` only one list (segment) per request, at its own tier, and it
    # changes without `updated`: every list (segment) each run (klaviyo/more_streams.py)
    "list_profile_counts": Stream("list_profile_count", params={"additional-fields[list]": "profile_count", "fields[list]": "profile_count"}),
    "segment_profile_counts": Stream("segment_profile_count", params={"additional-fields[segment]": "profile_count", "fields[segment]": "profile_count"}),
    "custom_object_types": Stream("object_types"),
    # one table per object type (custom_object_<title>); records have no time, sort or filter
    "custom_object_records": Stream("object_records", write_disposition="replace"),
}
# fmt: on


@dataclass(frozen=True)
class Report:
    """What a reporting-API table asks for (its endpoint and grouping are its row of STREAMS)."""

    report_type: str  # the JSON:API `data.type` of the request body
    series: bool = False  # a daily series from the cursor on, else values over the last year


REPORTS: Dict[str, Report] = {
    "campaign_values_report": Report("campaign-values-report"),
    "flow_values_report": Report("flow-values-report"),
    "flow_series_report": Report("flow-series-report", series=True),
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
# what catalog items and their variants both have, in the spec's order
_CATALOG: Dict[str, TDataType] = {
    "price": "double",
    "url": "text",
    "image_full_url": "text",
    "image_thumbnail_url": "text",
    "images": "json",
    "custom_metadata": "json",
    "published": "bool",
    "created": "timestamp",
    "updated": "timestamp",
}
# `predictive_analytics` (opt-in, see ENDPOINTS['profiles_predictive_analytics']): the spec's PredictiveAnalytics
PREDICTIVE_ANALYTICS_COLUMNS: Dict[str, TDataType] = {
    **{
        f"predictive_analytics__{name}": "double"
        for name in (
            "historic_clv",
            "predicted_clv",
            "total_clv",
            "historic_number_of_orders",
            "predicted_number_of_orders",
            "average_days_between_orders",
            "average_order_value",
            "churn_probability",
        )
    },
    "predictive_analytics__expected_date_of_next_order": "timestamp",
    "predictive_analytics__ranked_channel_affinity": "json",
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
    "deleted_profiles": {"id": "text", "deleted_at": "timestamp"},
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
        **_CATALOG,
    },
    "catalog_variants": {
        "id": "text",
        "external_id": "text",
        "sku": "text",
        "title": "text",
        "description": "text",
        "inventory_policy": "bigint",
        "inventory_quantity": "double",
        **_CATALOG,
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
    "push_tokens": {
        "id": "text",
        "created": "timestamp",
        "token": "text",
        "enablement_status": "text",
        "platform": "text",
        "vendor": "text",
        "background": "text",
        "recorded_date": "text",  # the spec gives it no date-time format
        **{
            f"metadata__{name}": "text"
            for name in ("device_id", "klaviyo_sdk", "sdk_version", "device_model", "os_name", "os_version")
            + ("manufacturer", "app_name", "app_version", "app_build", "app_id", "environment")
        },
        "profile_id": "text",
    },
    "accounts": {
        "id": "text",
        "test_account": "bool",
        "contact_information__default_sender_name": "text",
        "contact_information__default_sender_email": "text",
        "contact_information__website_url": "text",
        "contact_information__organization_name": "text",
        "contact_information__street_address__address1": "text",
        "contact_information__street_address__address2": "text",
        "contact_information__street_address__city": "text",
        "contact_information__street_address__region": "text",
        "contact_information__street_address__country": "text",
        "contact_information__street_address__zip": "text",
        "industry": "text",
        "timezone": "text",
        "preferred_currency": "text",
        "public_api_key": "text",
        "locale": "text",
    },
    "reviews": {
        "id": "text",
        "email": "text",
        "status__value": "text",
        "status__rejection_reason": "json",
        "verified": "bool",
        "review_type": "text",
        "created": "timestamp",
        "updated": "timestamp",
        "images": "json",
        "product__url": "text",
        "product__name": "text",
        "product__image_url": "text",
        "product__external_id": "text",
        "rating": "bigint",
        "author": "text",
        "content": "text",
        "title": "text",
        "smart_quote": "text",
        "public_reply__content": "text",
        "public_reply__author": "text",
        "public_reply__updated": "timestamp",
        "item_id": "text",
    },
    "campaign_recipient_estimations": {
        "id": "text",
        "estimated_recipient_count": "bigint",
        "campaign_id": "text",
    },
    "list_profile_counts": {"id": "text", "profile_count": "bigint", "counted_at": "timestamp"},
    "segment_profile_counts": {"id": "text", "profile_count": "bigint", "counted_at": "timestamp"},
    "custom_object_types": {
        "id": "text",
        "title": "text",
        "description": "text",
        "status": "text",
        "namespace": "text",
        "created_at": "timestamp",
        "updated_at": "timestamp",
    },
    # `record_properties` follow the customer's own object schema: JSON, keys as Klaviyo sends them
    "custom_object_records": {"id": "text", "object_type_id": "text", "record_properties": "json"},
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


def _columns(name: str, stream: Stream) -> Dict[str, TDataType]:
    """The stream's hints, else (and for what they leave out) its keys, its parent's id and its
    cursor typed: a stream without hints loads with the rest of each row in `extra_attributes`."""
    columns = dict(_COLUMN_TYPES.get(name, {}))
    for key in (*stream.primary_key, stream.parent and stream.parent_key):
        if key:
            columns.setdefault(key, "text")
    if stream.cursor:
        columns.setdefault(stream.cursor, "timestamp")
    columns[EXTRA_ATTRIBUTES] = "json"
    return columns


# every stream read as pages of rows (the reports have their own columns)
COLUMN_TYPES: Mapping[str, Mapping[str, TDataType]] = {
    name: _columns(name, stream) for name, stream in STREAMS.items() if name not in REPORTS
}
TABLE_COLUMNS: Dict[str, Dict[str, TColumnSchema]] = {
    stream: {name: {"data_type": data_type} for name, data_type in columns.items()}
    for stream, columns in COLUMN_TYPES.items()
}
