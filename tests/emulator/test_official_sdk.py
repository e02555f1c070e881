"""Klaviyo's own Python SDK (``klaviyo-api``) as a second, independent client of the emulator.

Every read operation the source uses, and the report queries, are called through the SDK at both
served revisions, with the SDK's pagination (``page_cursor=<links.next>``, as its README shows) and
its ``FilterBuilder``, over every page of a seeded account. Each case checks: every request answered
200 (none rejected), every response parsed by the SDK into its typed models, and the ids equal the
account's.

One SDK version serves both revisions: klaviyo-api 25.0.0 (generated for 2026-10-15, the revision
its wrapper sends) with its ``revision`` header set per client. For every operation used here the
two revisions differ only in the Campaigns API (see klaviyo_emulator/openapi-2026-10-15-subset.SOURCE.txt),
so 25.0.0's models fit 2026-07-15 responses too, except campaigns and campaign messages: at 2026-07-15
those are read with the SDK's dictionary responses (its 2026-07-15 shapes are checked against the
2026-07-15 spec in test_spec_validation.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from klaviyo_emulator import Emulator, EmulatorConfig, run_emulator

from .conftest import EMU_SPEC

klaviyo_api = pytest.importorskip("klaviyo_api", reason="klaviyo-api (requirements-dev.txt) is not installed")
from klaviyo_api import KlaviyoAPI  # noqa: E402
from klaviyo_api.filter_builder import FilterBuilder  # noqa: E402
from openapi_client.api_arg_options import USE_DICTIONARY_FOR_RESPONSE_DATA  # noqa: E402

REVISIONS = ("2026-07-15", "2026-10-15")
STATS = ["recipients", "delivered", "opens", "clicks", "conversions", "conversion_value"]


@pytest.fixture(scope="module")
def sdk_emu() -> Iterator[Emulator]:
    # links carry Klaviyo's https host: the SDK only reads the cursor out of links.next, and looks for
    # "https://" to find it (requests still go to the emulator, the SDK's test_host)
    config = EmulatorConfig(account=EMU_SPEC, rate_limit_scale=0, links_base_url="https://a.klaviyo.com/api")
    with run_emulator(config) as emu:
        yield emu


def _client(emu: Emulator, revision: str) -> KlaviyoAPI:
    client = KlaviyoAPI(emu.api_key, max_delay=0, max_retries=0, test_host=emu.base_url.removesuffix("/api"))
    client.api_client.default_headers["revision"] = revision
    return client


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def _all_pages(call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
    """Every item of every page, paging the way the SDK's README shows (page_cursor=links.next)."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        response = call(*args, **kwargs, **({"page_cursor": cursor} if cursor else {}))
        data = _field(response, "data")
        items.extend(data if isinstance(data, list) else [data])
        links = _field(response, "links")
        cursor = _field(links, "next") if links is not None else None
        if not cursor:
            return items


def _ids(items: list[Any]) -> list[str]:
    return [str(_field(i, "id")) for i in items]


def _omni(revision: str) -> dict[str, Any]:
    """SDK 25.0.0's campaign models are 2026-10-15's; at 2026-07-15 campaigns come as dictionaries."""
    return {} if revision == "2026-10-15" else {"options": {USE_DICTIONARY_FOR_RESPONSE_DATA: True}}


# --------------------------------------------------------------------------- one case per operation
# each returns (ids the SDK read, ids of the account)
def profiles(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = _all_pages(k.Profiles.get_profiles, page_size=20, additional_fields_profile=["subscriptions"])
    return sorted(_ids(got)), sorted(acc.profiles_by_id)


def profiles_updated_since(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    since = sorted(p["updated"] for p in acc.profiles_by_id.values())[len(acc.profiles_by_id) // 2]
    fb = FilterBuilder()
    fb.greater_than("updated", since)
    got = _all_pages(k.Profiles.get_profiles, page_size=20, filter=fb.build(), sort="updated")
    return _ids(got), [
        p["id"]
        for p in sorted(acc.profiles_by_id.values(), key=lambda p: (p["updated"], p["id"]))
        if p["updated"] > since
    ]


def lists(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    return sorted(_ids(_all_pages(k.Lists.get_lists, sort="updated", page_size=2))), sorted(acc.list_ids())


def list_profiles(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {
        lid: sorted(
            _ids(_all_pages(k.Lists.get_profiles_for_list, lid, page_size=25, sort="joined_group_at"))
        )
        for lid in acc.list_ids()
    }
    return got, {lid: sorted(acc.list_members(lid)) for lid in acc.list_ids()}


def list_profile_ids(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {
        lid: sorted(_ids(_all_pages(k.Lists.get_profile_ids_for_list, lid, page_size=25)))
        for lid in acc.list_ids()
    }
    return got, {lid: sorted(acc.list_members(lid)) for lid in acc.list_ids()}


def segments(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    return sorted(_ids(_all_pages(k.Segments.get_segments, sort="updated", page_size=2))), sorted(
        acc.segment_ids()
    )


def segment_profiles(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {
        sid: sorted(
            _ids(_all_pages(k.Segments.get_profiles_for_segment, sid, page_size=25, sort="joined_group_at"))
        )
        for sid in acc.segment_ids()
    }
    return got, {sid: sorted(acc.segment_members(sid)) for sid in acc.segment_ids()}


def segment_profile_ids(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {
        sid: sorted(_ids(_all_pages(k.Segments.get_profile_ids_for_segment, sid, page_size=25)))
        for sid in acc.segment_ids()
    }
    return got, {sid: sorted(acc.segment_members(sid)) for sid in acc.segment_ids()}


def campaigns(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    if rev == "2026-10-15":  # omnichannel: one collection, no channel filter
        return sorted(_ids(_all_pages(k.Campaigns.get_campaigns, sort="updated_at", page_size=2))), sorted(
            c["id"] for c in acc.campaigns()
        )
    got = {}
    for channel in ("email", "sms", "mobile_push"):
        fb = FilterBuilder()
        fb.equals("messages.channel", channel)
        got[channel] = sorted(
            _ids(
                _all_pages(
                    k.Campaigns.get_campaigns, filter=fb.build(), sort="updated_at", page_size=2, **_omni(rev)
                )
            )
        )
    return got, {ch: sorted(c["id"] for c in acc.campaigns(ch)) for ch in ("email", "sms", "mobile_push")}


def campaign_messages(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {
        c["id"]: _ids(_all_pages(k.Campaigns.get_messages_for_campaign, c["id"], **_omni(rev)))
        for c in acc.campaigns()
    }
    return got, {c["id"]: list(c["message_ids"]) for c in acc.campaigns()}


def events(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    start = min(e["datetime"] for e in acc.all_events())
    fb = FilterBuilder()
    fb.greater_or_equal("datetime", start)
    got = _all_pages(
        k.Events.get_events,
        filter=fb.build(),
        sort="datetime",
        page_size=500,
        include=["metric", "attributions"],
    )
    return _ids(got), [e["id"] for e in acc.all_events()]


def metrics(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    return sorted(_ids(_all_pages(k.Metrics.get_metrics))), sorted(acc.metrics_by_id)


def flows(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    return sorted(_ids(_all_pages(k.Flows.get_flows, sort="updated", page_size=2))), sorted(
        f["id"] for f in acc.flows()
    )


def flow_actions(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    got = {f["id"]: sorted(_ids(_all_pages(k.Flows.get_actions_for_flow, f["id"]))) for f in acc.flows()}
    return got, {f["id"]: sorted(a["id"] for a in acc.flow_actions(f["id"])) for f in acc.flows()}


def flow_messages(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    actions = [a for f in acc.flows() for a in acc.flow_actions(f["id"])]
    got = {a["id"]: sorted(_ids(_all_pages(k.Flows.get_messages_for_flow_action, a["id"]))) for a in actions}
    return got, {a["id"]: sorted(m["id"] for m in acc.flow_messages(a["id"])) for a in actions}


def _collection(call: str, table: str, **params: Any) -> Callable[[KlaviyoAPI, Any, str], tuple[Any, Any]]:
    def case(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
        api, method = call.split(".")
        got = _all_pages(getattr(getattr(k, api), method), **params)
        return sorted(_ids(got)), sorted(getattr(acc, table))

    return case


def coupon_codes(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    fb = FilterBuilder()
    fb.any("coupon.id", [c["id"] for c in acc.coupons()])
    got = _all_pages(k.Coupons.get_coupon_codes, filter=fb.build(), include=["coupon"], page_size=5)
    return sorted(_ids(got)), sorted(c["id"] for c in acc.coupon_codes())


def _report_body(rtype: str, acc: Any, **extra: Any) -> dict[str, Any]:
    attributes = {
        "statistics": STATS,
        "timeframe": {"key": "last_365_days"},
        "conversion_metric_id": acc.metric_id("Placed Order", "shopify"),
        **extra,
    }
    return {"data": {"type": rtype, "attributes": attributes}}


def _report_rows(call: Callable[..., Any], body: dict[str, Any]) -> list[Any]:
    # the SDK's report models have ObjectLinks (self only, as in the spec): a links.next the emulator
    # wrote would be dropped, so the account is small enough for one page (checked by the request count)
    response = call(body)
    return list(response.data.attributes.results)


def _groupings(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(row.groupings) for row in rows]


def campaign_values_report(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    body = _report_body("campaign-values-report", acc)
    expected = acc.campaign_values(
        STATS, {"key": "last_365_days"}, body["data"]["attributes"]["conversion_metric_id"]
    )
    return _groupings(_report_rows(k.Reporting.query_campaign_values, body)), [
        r["groupings"] for r in expected["results"]
    ]


def flow_values_report(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    body = _report_body("flow-values-report", acc)
    expected = acc.flow_values(
        STATS, {"key": "last_365_days"}, body["data"]["attributes"]["conversion_metric_id"]
    )
    return _groupings(_report_rows(k.Reporting.query_flow_values, body)), [
        r["groupings"] for r in expected["results"]
    ]


def flow_series_report(k: KlaviyoAPI, acc: Any, rev: str) -> tuple[Any, Any]:
    body = _report_body("flow-series-report", acc, interval="weekly")
    expected = acc.flow_series(
        STATS, {"key": "last_365_days"}, body["data"]["attributes"]["conversion_metric_id"], interval="weekly"
    )
    return _groupings(_report_rows(k.Reporting.query_flow_series, body)), [
        r["groupings"] for r in expected["results"]
    ]


CASES: dict[str, Callable[[KlaviyoAPI, Any, str], tuple[Any, Any]]] = {
    "profiles": profiles,
    "profiles_updated_since": profiles_updated_since,
    "lists": lists,
    "list_profiles": list_profiles,
    "list_profile_ids": list_profile_ids,
    "segments": segments,
    "segment_profiles": segment_profiles,
    "segment_profile_ids": segment_profile_ids,
    "campaigns": campaigns,
    "campaign_messages": campaign_messages,
    "events_with_metric_and_attributions": events,
    "metrics": metrics,
    "flows": flows,
    "flow_actions": flow_actions,
    "flow_messages": flow_messages,
    "templates": _collection("Templates.get_templates", "templates_by_id", page_size=2),
    "tags": _collection("Tags.get_tags", "tags_by_id", page_size=2),
    "tag_groups": _collection("Tags.get_tag_groups", "tag_groups_by_id", page_size=2),
    "catalog_items": _collection("Catalogs.get_catalog_items", "catalog_items_by_id", page_size=2),
    "catalog_variants": _collection("Catalogs.get_catalog_variants", "catalog_variants_by_id", page_size=2),
    "catalog_categories": _collection(
        "Catalogs.get_catalog_categories", "catalog_categories_by_id", page_size=2
    ),
    "coupons": _collection("Coupons.get_coupons", "coupons_by_id", page_size=2),
    "coupon_codes": coupon_codes,
    "forms": _collection("Forms.get_forms", "forms_by_id", page_size=2),
    "images": _collection("Images.get_images", "images_by_id", page_size=2),
    "campaign_values_report": campaign_values_report,
    "flow_values_report": flow_values_report,
    "flow_series_report": flow_series_report,
}


# cases whose collections span several pages in the seeded account (the others fit in one)
PAGED = {
    "profiles", "profiles_updated_since", "lists", "list_profiles", "list_profile_ids", "segments",
    "segment_profiles", "segment_profile_ids", "campaigns", "events_with_metric_and_attributions",
    "flows", "templates", "tags", "catalog_items", "catalog_variants", "catalog_categories", "coupons",
    "coupon_codes", "forms", "images",
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("revision", REVISIONS)
def test_official_sdk_reads_every_page_with_no_request_rejected(
    sdk_emu: Emulator, revision: str, case: str
) -> None:
    before = len(sdk_emu.request_log)
    got, expected = CASES[case](_client(sdk_emu, revision), sdk_emu.account, revision)
    answered = sdk_emu.request_log[before:]
    assert [(e.path, e.query, e.status) for e in answered if e.status != 200] == []
    cursors = [e.query["page[cursor]"] for e in answered if "page[cursor]" in e.query]
    # the SDK sends each cursor with the '=' it keeps from 'page%5Bcursor%5D=' in links.next
    assert bool(cursors) == (case in PAGED) and all(c.startswith("=") for c in cursors)
    if case.endswith("_report"):
        assert len(answered) == 1
    assert got == expected
    assert expected, "the seeded account should have records for every case"


def test_official_sdk_reads_the_2026_10_15_campaign_messages_collection(sdk_emu: Emulator) -> None:
    before = len(sdk_emu.request_log)
    k = _client(sdk_emu, "2026-10-15")
    got = _all_pages(k.Campaigns.get_campaign_messages, page_size=3, include=["campaign"], sort="updated")
    answered = sdk_emu.request_log[before:]
    assert [e.status for e in answered] == [200] * len(answered) and len(answered) > 1
    assert sorted(_ids(got)) == sorted(sdk_emu.account.campaign_messages_by_id)
