"""The account data beyond the original connector's tables: each table equals the emulator's account."""

from datetime import timedelta
from typing import Any, Dict, List

import dlt
import pytest
from dlt.common import json

from klaviyo.client import KlaviyoClient, RetryPolicy
from tests.helpers import source_for, table_counts

NEW_TABLES = (
    "accounts",
    "campaign_recipient_estimations",
    "list_profile_counts",
    "segment_profile_counts",
    "reviews",
    "custom_object_types",
    "custom_object_records",
)


def rows(pipeline: dlt.Pipeline, table: str, order_by: str = "id") -> List[Dict[str, Any]]:
    """The loaded rows of `table` as dicts, without dlt's own columns."""
    with (
        pipeline.sql_client() as client,
        client.execute_query(f"select * from {table} order by {order_by}") as cursor,
    ):
        names = [d[0] for d in cursor.description]
        return [
            {n: v for n, v in zip(names, values, strict=True) if not n.startswith("_dlt")}
            for values in cursor.fetchall()
        ]


def test_new_tables_are_opt_in(emulator: Any) -> None:
    source = source_for(emulator)
    assert set(NEW_TABLES) <= set(source.resources)
    assert not set(NEW_TABLES) & set(source.selected_resources)


def test_accounts_table_is_the_account_the_key_belongs_to(emulator: Any, pipeline: dlt.Pipeline) -> None:
    info = emulator.account.account_info
    contact = info["contact_information"]
    pipeline.run(source_for(emulator).with_resources("accounts"))
    assert rows(pipeline, "accounts") == [
        {
            "id": info["id"],
            "test_account": info["test_account"],
            "contact_information__default_sender_name": contact["default_sender_name"],
            "contact_information__default_sender_email": contact["default_sender_email"],
            "contact_information__website_url": contact["website_url"],
            "contact_information__organization_name": contact["organization_name"],
            **{
                f"contact_information__street_address__{name}": value
                for name, value in contact["street_address"].items()
            },
            "industry": info["industry"],
            "timezone": info["timezone"],
            "preferred_currency": info["preferred_currency"],
            "public_api_key": info["public_api_key"],
            "locale": info["locale"],
            "extra_attributes": None,
        }
    ]
    assert [e.path.rstrip("/") for e in emulator.request_log] == ["/api/accounts"]


def expected_review(review: Dict[str, Any]) -> Dict[str, Any]:
    """A review of the emulator's account as its row (REVIEW_COLUMNS)."""
    product = review["product"] or {}
    reply = review["public_reply"] or {}
    return {
        "id": review["id"],
        "status__value": review["status"],
        "updated": review["updated"],
        "created": review["created"],
        "rating": review["rating"],
        "content": review["content"],
        "product__external_id": product.get("external_id"),
        "public_reply__author": reply.get("author"),
        "item_id": review["item_id"],
        "extra_attributes": None,
    }


def loaded_reviews(pipeline: dlt.Pipeline) -> List[Dict[str, Any]]:
    """The loaded reviews, in the columns `expected_review` gives."""
    return [{name: row[name] for name in REVIEW_COLUMNS} for row in rows(pipeline, "reviews")]


REVIEW_COLUMNS = (
    "id",
    "status__value",
    "updated",
    "created",
    "rating",
    "content",
    "product__external_id",
    "public_reply__author",
    "item_id",
    "extra_attributes",
)


def test_reviews_equal_the_account_and_an_unchanged_account_costs_one_request(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    expected = [expected_review(r) for _, r in sorted(account.reviews_by_id.items())]
    pipeline.run(source_for(emulator).with_resources("reviews"))
    assert loaded_reviews(pipeline) == expected
    assert [e.path for e in emulator.request_log].count("/api/reviews") == 3  # 250 reviews, 100 a page

    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("reviews"))
    assert [e.path for e in emulator.request_log] == ["/api/reviews"]
    assert loaded_reviews(pipeline) == expected


def test_reviews_from_a_start_date_stop_reading_at_it(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    newest = sorted(account.reviews_by_id.values(), key=lambda r: r["updated"], reverse=True)
    start = newest[49]["updated"]  # the 50 newest reviews lie on the first page
    pipeline.run(source_for(emulator, start_date=start.isoformat()).with_resources("reviews"))
    assert {r["id"] for r in rows(pipeline, "reviews")} == {r["id"] for r in newest if r["updated"] >= start}
    assert [e.path for e in emulator.request_log] == ["/api/reviews"]


def test_a_review_updated_since_the_last_run_is_merged_from_the_first_page(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("reviews"))
    oldest = min(account.reviews_by_id.values(), key=lambda r: r["updated"])
    with account.lock:
        oldest["updated"] = account.now + timedelta(minutes=5)
        oldest["content"] = "Edited after the first run"
    account.bump()
    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("reviews"))
    assert [e.path for e in emulator.request_log] == ["/api/reviews"]
    assert loaded_reviews(pipeline) == [expected_review(r) for _, r in sorted(account.reviews_by_id.items())]


def test_custom_object_types_and_one_table_of_records_per_type_equal_the_account(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("custom_object_types", "custom_object_records"))
    assert [
        (t["id"], t["title"], t["namespace"], t["updated_at"]) for t in rows(pipeline, "custom_object_types")
    ] == [
        (t["id"], t["title"], t["namespace"], t["updated_at"])
        for _, t in sorted(account.object_types_by_id.items())
    ]
    tables = {"Vehicle": "custom_object_vehicle", "Loyalty Membership": "custom_object_loyalty_membership"}
    for type_id, records in account.object_records_by_type.items():
        table = tables[account.object_types_by_id[type_id]["title"]]
        assert [
            (r["id"], r["object_type_id"], json.loads(r["record_properties"])) for r in rows(pipeline, table)
        ] == [(rid, type_id, record["record_properties"]) for rid, record in sorted(records.items())]
    assert "custom_object_records" not in table_counts(pipeline)


def test_a_custom_object_record_deleted_in_klaviyo_leaves_its_table(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    vehicles = next(t for t, o in account.object_types_by_id.items() if o["title"] == "Vehicle")
    pipeline.run(source_for(emulator).with_resources("custom_object_records"))
    with account.lock:
        gone = sorted(account.object_records_by_type[vehicles])[0]
        del account.object_records_by_type[vehicles][gone]
    account.bump()
    pipeline.run(source_for(emulator).with_resources("custom_object_records"))
    ids = [r["id"] for r in rows(pipeline, "custom_object_vehicle")]
    assert gone not in ids and ids == sorted(account.object_records_by_type[vehicles])


def test_recipient_estimations_of_the_campaigns_loaded_equal_the_account(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("campaigns", "campaign_recipient_estimations"))
    loaded = {
        r["id"]: r["estimated_recipient_count"] for r in rows(pipeline, "campaign_recipient_estimations")
    }
    assert loaded == {
        cid: e["estimated_recipient_count"] for cid, e in account.recipient_estimations_by_id.items()
    }
    assert len(loaded) == len(account.campaigns_by_id)


def test_recipient_estimations_are_read_again_only_for_campaigns_updated_since_the_last_run(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("campaigns", "campaign_recipient_estimations"))
    campaign = account.campaigns("email")[0]["id"]
    account.update_campaign(campaign, at=account.now + timedelta(minutes=5))
    with account.lock:
        account.recipient_estimations_by_id[campaign]["estimated_recipient_count"] = 12345
    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("campaigns", "campaign_recipient_estimations"))
    asked = [e.path for e in emulator.request_log if "recipient-estimations" in e.path]
    assert asked == [f"/api/campaign-recipient-estimations/{campaign}"]
    loaded = {
        r["id"]: r["estimated_recipient_count"] for r in rows(pipeline, "campaign_recipient_estimations")
    }
    assert loaded[campaign] == 12345 and len(loaded) == len(account.campaigns_by_id)


def test_a_campaign_without_a_recipient_estimation_is_skipped(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    gone = sorted(account.recipient_estimations_by_id)[0]
    with account.lock:  # Klaviyo answers 404 for a campaign it has no estimate of
        del account.recipient_estimations_by_id[gone]
    account.bump()
    pipeline.run(source_for(emulator).with_resources("campaigns", "campaign_recipient_estimations"))
    loaded = {
        r["id"]: r["estimated_recipient_count"] for r in rows(pipeline, "campaign_recipient_estimations")
    }
    assert loaded == {
        cid: e["estimated_recipient_count"] for cid, e in account.recipient_estimations_by_id.items()
    }
    assert gone in account.campaigns_by_id and gone not in loaded
    answered = [e.status for e in emulator.request_log if e.path.endswith(f"recipient-estimations/{gone}")]
    assert answered == [404]


PREDICTIVE = (
    "historic_clv",
    "predicted_clv",
    "total_clv",
    "historic_number_of_orders",
    "predicted_number_of_orders",
    "average_days_between_orders",
    "average_order_value",
    "churn_probability",
    "expected_date_of_next_order",
    "ranked_channel_affinity",
)


def test_profiles_carry_no_predictive_analytics_unless_asked_for(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator).with_resources("profiles"))
    asked = {
        e.query.get("additional-fields[profile]") for e in emulator.request_log if e.path == "/api/profiles"
    }
    assert asked == {"subscriptions"}
    assert not [name for name in rows(pipeline, "profiles")[0] if name.startswith("predictive")]


def test_profiles_with_predictive_analytics_equal_the_account(emulator: Any, pipeline: dlt.Pipeline) -> None:
    from klaviyo_emulator.profiles import predictive_analytics

    account = emulator.account
    pipeline.run(source_for(emulator, predictive_analytics=True).with_resources("profiles"))
    loaded = {
        r["id"]: tuple(r[f"predictive_analytics__{name}"] for name in PREDICTIVE)
        for r in rows(pipeline, "profiles")
    }
    assert loaded == {
        pid: tuple(predictive_analytics(account, p).values()) for pid, p in account.profiles_by_id.items()
    }
    assert tuple(predictive_analytics(account, next(iter(account.profiles_by_id.values())))) == PREDICTIVE


def test_profiles_with_predictive_analytics_are_read_within_their_lower_tier(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    """Klaviyo allows 10 such requests a second (75 without): the emulator enforces the tier."""
    emulator.account.add_profiles(1500)  # 17 pages, read by 4 workers
    emulator.config.rate_limit_scale = 1.0
    pipeline.run(source_for(emulator, predictive_analytics=True).with_resources("profiles"))
    statuses = [e.status for e in emulator.request_log if e.path == "/api/profiles"]
    assert len(statuses) >= 17 and set(statuses) == {200}
    assert table_counts(pipeline)["profiles"] == len(emulator.account.profiles_by_id)


@pytest.mark.parametrize(
    ("target", "limits"),
    [
        ("profiles?additional-fields%5Bprofile%5D=subscriptions", "profiles"),
        (
            "profiles?additional-fields%5Bprofile%5D=subscriptions%2Cpredictive_analytics",
            "profiles_predictive_analytics",
        ),
        ("lists/XyZ1?additional-fields%5Blist%5D=profile_count", "list_profile_count"),
        (
            "segments/XyZ1?fields%5Bsegment%5D=profile_count&additional-fields%5Bsegment%5D=profile_count",
            "segment_profile_count",
        ),
    ],
)
def test_a_request_counts_on_the_limiter_of_the_tier_its_additional_fields_ask_for(
    target: str, limits: str
) -> None:
    client = KlaviyoClient("pk_test", "https://a.klaviyo.com/api", "2026-07-15", RetryPolicy())
    _, name, _ = client._adapter.endpoint_for(f"https://a.klaviyo.com/api/{target}")
    assert name == limits


def test_each_lists_and_segments_profile_count_equals_the_account(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("list_profile_counts", "segment_profile_counts"))
    lists = {r["id"]: r["profile_count"] for r in rows(pipeline, "list_profile_counts")}
    segments = {r["id"]: r["profile_count"] for r in rows(pipeline, "segment_profile_counts")}
    assert lists == {lid: len(account.list_members(lid)) for lid in account.list_ids()}
    assert segments == {sid: len(account.segment_members(sid)) for sid in account.segment_ids()}
    assert all(r["counted_at"] is not None for r in rows(pipeline, "list_profile_counts"))


def test_a_profile_count_follows_a_member_leaving_though_the_list_is_not_updated(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("lists", "list_profile_counts"))
    list_id = max(account.list_ids(), key=lambda lid: len(account.list_members(lid)))
    before = len(account.list_members(list_id))
    with account.lock:  # a member leaves; the list's own `updated` stays as it was
        account.lists_by_id[list_id]["members"].pop(next(iter(account.list_members(list_id))))
    account.bump()
    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("lists", "list_profile_counts"))
    counts = {r["id"]: r["profile_count"] for r in rows(pipeline, "list_profile_counts")}
    assert counts[list_id] == len(account.list_members(list_id)) == before - 1
    single = [e.path for e in emulator.request_log if e.operation_id == "get_list"]
    assert sorted(single) == sorted(f"/api/lists/{lid}" for lid in account.list_ids())


def test_the_lists_table_never_asks_for_profile_count(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(source_for(emulator).with_resources("lists", "list_members"))
    assert not [e for e in emulator.request_log if "additional-fields[list]" in e.query]
    assert "profile_count" not in rows(pipeline, "lists")[0]
