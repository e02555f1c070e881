"""Attributions, relationship ids, catalogs, coupons, forms, images and the reporting POST endpoints."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from klaviyo_emulator import Emulator
from klaviyo_emulator.ratelimit import RateLimiter

from .conftest import get_all, session_for


def _ids(emu: Emulator) -> dict[str, str]:
    acc = emu.account
    coupon = acc.coupons()[0]["id"]
    return {
        "list": acc.list_ids()[1],
        "segment": acc.segment_ids()[0],
        "coupon": coupon,
        "profile": next(c["profile_id"] for c in acc.coupon_codes() if c["profile_id"]),
        "form": next(f["id"] for f in acc.forms() if f["ab_test"]),
        "item": acc.catalog_items()[0]["id"],
    }


GET_PATHS = [
    "/events?include=attributions&page[size]=1000",
    "/events?include=metric,profile,attributions&page[size]=50",
    "/segments/{segment}/relationships/profiles?page[size]=100",
    "/lists/{list}/relationships/profiles?page[size]=100",
    "/catalog-items",
    "/catalog-items?include=variants&sort=-created",
    "/catalog-items?filter=equals(published,true)&fields[catalog-item]=title,price",
    "/catalog-variants?page[size]=5",
    "/catalog-variants?filter=equals(item.id,'{item}')",
    "/catalog-categories",
    "/coupons",
    "/coupon-codes?filter=equals(coupon.id,'{coupon}')&include=coupon",
    "/coupon-codes?filter=any(profile.id,['{profile}'])",
    "/forms",
    "/forms?sort=-updated_at&filter=equals(status,'live')",
    "/forms/{form}/form-versions",
    "/images",
    "/images?filter=greater-than(size,1000)&sort=-size&page[size]=3",
]


@pytest.mark.parametrize("path", GET_PATHS)
def test_new_get_endpoints_validate_against_spec(
    shared_emu: Emulator, http: requests.Session, validate_response: Any, path: str
) -> None:
    r = http.get(shared_emu.base_url + path.format(**_ids(shared_emu)))
    assert r.status_code == 200, r.text
    validate_response(r)
    body = r.json()
    assert ("included" in body) == ("include=" in path)


def test_events_attributions_relationship_and_included(shared_emu: Emulator, http: requests.Session) -> None:
    acc = shared_emu.account
    expected = {a["id"]: a for a in acc.attributions()}
    assert expected, "the seeded account should have attributed conversions"
    order = acc.metric_id("Placed Order", "shopify")
    items: list[dict[str, Any]] = []
    included: list[dict[str, Any]] = []
    url: str | None = f"{shared_emu.base_url}/events"
    params: dict[str, str] | None = {
        "filter": f"equals(metric_id,'{order}')",
        "include": "attributions",
        "page[size]": "1000",
    }
    while url:
        body = http.get(url, params=params).json()
        params = None
        items += body["data"]
        included += body["included"]
        url = body["links"]["next"]
    got = {a["id"]: a for a in included if a["type"] == "attribution"}
    assert set(got) == set(expected)
    for ev in items:
        rel_ids = [d["id"] for d in ev["relationships"]["attributions"]["data"]]
        assert rel_ids == [a["id"] for a in acc.attributions(ev["id"])]
    for aid, a in expected.items():
        rels = got[aid]["relationships"]
        assert rels["event"]["data"]["id"] == a["event_id"]
        assert rels["attributed-event"]["data"]["id"] == a["attributed_event_id"]
        if a["campaign_id"]:
            assert rels["campaign"]["data"] == {"type": "campaign", "id": a["campaign_id"]}
            assert rels["campaign-message"]["data"]["id"] == a["campaign_message_id"]
            assert a["campaign_message_id"] in acc.campaign_messages_by_id
        else:
            assert rels["flow"]["data"] == {"type": "flow", "id": a["flow_id"]}
            assert rels["flow-message"]["data"]["id"] == a["flow_message_id"]
    assert any(a["campaign_id"] for a in expected.values()) and any(a["flow_id"] for a in expected.values())


def test_relationship_profile_ids_match_members(shared_emu: Emulator, http: requests.Session) -> None:
    acc = shared_emu.account
    for kind, ids, members in (
        ("segments", acc.segment_ids(), acc.segment_members),
        ("lists", acc.list_ids(), acc.list_members),
    ):
        for gid in ids:
            items, _ = get_all(http, f"{shared_emu.base_url}/{kind}/{gid}/relationships/profiles")
            assert all(set(i) == {"type", "id"} for i in items)
            assert {i["id"] for i in items} == set(members(gid))


@pytest.mark.parametrize(
    "path,truth",
    [
        ("/catalog-items", "catalog_items"),
        ("/catalog-variants", "catalog_variants"),
        ("/catalog-categories", "catalog_categories"),
        ("/coupons", "coupons"),
        ("/forms", "forms"),
        ("/images", "images"),
    ],
)
@pytest.mark.parametrize("size", ["1", "100"])
def test_collections_paginate_to_ground_truth(
    shared_emu: Emulator, http: requests.Session, path: str, truth: str, size: str
) -> None:
    items, pages = get_all(http, shared_emu.base_url + path, {"page[size]": size})
    expected = {r["id"] for r in getattr(shared_emu.account, truth)()}
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert pages == max(1, -(-len(expected) // int(size)))


def test_catalog_ids_and_filters(shared_emu: Emulator, http: requests.Session) -> None:
    acc = shared_emu.account
    base = shared_emu.base_url
    for it in acc.catalog_items():
        assert it["id"] == "$custom:::$default:::" + it["external_id"]
    item = next(i for i in acc.catalog_items() if i["variant_ids"])
    items, _ = get_all(http, f"{base}/catalog-variants", {"filter": f"equals(item.id,'{item['id']}')"})
    assert {i["id"] for i in items} == {v["id"] for v in acc.catalog_variants(item["id"])}
    cat = acc.catalog_categories()[0]
    items, _ = get_all(http, f"{base}/catalog-items", {"filter": f"equals(category.id,'{cat['id']}')"})
    assert {i["id"] for i in items} == set(cat["item_ids"])
    items, _ = get_all(http, f"{base}/catalog-categories", {"filter": f"equals(item.id,'{item['id']}')"})
    assert {i["id"] for i in items} == set(item["category_ids"])
    some = [i["id"] for i in acc.catalog_items()[:3]]
    flt = "any(ids,[" + ",".join(f"'{i}'" for i in some) + "])"
    items, _ = get_all(http, f"{base}/catalog-items", {"filter": flt})
    assert {i["id"] for i in items} == set(some)
    items, _ = get_all(http, f"{base}/catalog-items", {"filter": "equals(published,false)"})
    assert {i["id"] for i in items} == {i["id"] for i in acc.catalog_items() if not i["published"]}
    r = http.get(f"{base}/catalog-items", params={"sort": "-created"})
    created = [i["attributes"]["created"] for i in r.json()["data"]]
    assert created == sorted(created, reverse=True)
    assert http.get(f"{base}/catalog-items", params={"page[size]": "101"}).status_code == 400
    assert http.get(f"{base}/catalog-items", params={"filter": "equals(ids,'x')"}).status_code == 400


def test_coupon_codes_require_coupon_or_profile_filter(
    shared_emu: Emulator, http: requests.Session, validate_response: Any
) -> None:
    acc = shared_emu.account
    base = shared_emu.base_url
    for params in ({}, {"filter": "equals(status,'USED')"}):
        r = http.get(f"{base}/coupon-codes", params=params)
        assert r.status_code == 400
        assert r.json()["errors"][0]["source"] == {"parameter": "filter"}
        validate_response(r)
    for c in acc.coupons():
        items, _ = get_all(http, f"{base}/coupon-codes", {"filter": f"equals(coupon.id,'{c['id']}')"})
        assert {i["id"] for i in items} == {cc["id"] for cc in acc.coupon_codes(c["id"])}
    ids = [c["id"] for c in acc.coupons()]
    flt = "any(coupon.id,[" + ",".join(f"'{i}'" for i in ids) + "]),equals(status,'UNASSIGNED')"
    items, _ = get_all(http, f"{base}/coupon-codes", {"filter": flt})
    assert {i["id"] for i in items} == {c["id"] for c in acc.coupon_codes() if c["status"] == "UNASSIGNED"}


def test_form_versions_and_images_filters(shared_emu: Emulator, http: requests.Session) -> None:
    acc = shared_emu.account
    base = shared_emu.base_url
    for f in acc.forms():
        items, _ = get_all(http, f"{base}/forms/{f['id']}/form-versions")
        assert [i["id"] for i in items] == [v["id"] for v in acc.form_versions(f["id"])]
    assert http.get(f"{base}/forms/NOPE/form-versions").status_code == 404
    items, _ = get_all(http, f"{base}/images", {"filter": "greater-or-equal(size,100000)"})
    assert {i["id"] for i in items} == {i["id"] for i in acc.images() if i["size"] >= 100000}
    assert http.get(f"{base}/images", params={"filter": "greater-than(size,'1')"}).status_code == 400


# --------------------------------------------------------------------------- reports
def _report(rtype: str, **attrs: Any) -> dict[str, Any]:
    return {"data": {"type": rtype, "attributes": attrs}}


STATS = [
    "recipients",
    "delivered",
    "opens",
    "opens_unique",
    "open_rate",
    "clicks",
    "conversions",
    "conversion_value",
]


@pytest.mark.parametrize(
    "path,rtype,extra,truth",
    [
        ("/campaign-values-reports", "campaign-values-report", {}, "campaign_values"),
        ("/flow-values-reports", "flow-values-report", {}, "flow_values"),
        ("/flow-series-reports", "flow-series-report", {"interval": "weekly"}, "flow_series"),
    ],
)
def test_reports_validate_and_match_ground_truth(
    emu: Emulator, validate_response: Any, path: str, rtype: str, extra: dict[str, Any], truth: str
) -> None:
    acc = emu.account
    s = session_for(emu)
    conv = acc.metric_id("Placed Order", "shopify")
    assert conv
    tf = {"key": "last_365_days"}
    r = s.post(
        emu.base_url + path,
        json=_report(rtype, statistics=STATS, timeframe=tf, conversion_metric_id=conv, **extra),
    )
    assert r.status_code == 200, r.text
    validate_response(r)
    attrs = r.json()["data"]["attributes"]
    kwargs: dict[str, Any] = {"interval": extra["interval"]} if extra else {}
    expected = getattr(acc, truth)(STATS, tf, conv, **kwargs)
    assert attrs == expected
    assert attrs["results"], "the seeded account should have report rows"
    for row in attrs["results"]:
        assert set(row["statistics"]) == set(STATS)
    if "date_times" in attrs:
        assert all(
            len(v) == len(attrs["date_times"]) for row in attrs["results"] for v in row["statistics"].values()
        )


def test_campaign_report_group_by_filter_and_paging(emu: Emulator, validate_response: Any) -> None:
    acc = emu.account
    s = session_for(emu)
    emu.config.report_page_size = 2
    conv = acc.metric_id("Placed Order", "shopify")
    assert conv
    attrs = {
        "statistics": ["opens", "delivered"],
        "timeframe": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-12-31T00:00:00+00:00"},
        "conversion_metric_id": conv,
        "group_by": ["campaign_id", "campaign_message_id", "campaign_message_name"],
        "filter": "contains-any(send_channel,['email','sms'])",
    }
    rows: list[dict[str, Any]] = []
    url: str | None = f"{emu.base_url}/campaign-values-reports"
    while url:
        r = s.post(url, json=_report("campaign-values-report", **attrs))
        assert r.status_code == 200, r.text
        validate_response(r)
        rows += r.json()["data"]["attributes"]["results"]
        url = r.json()["links"]["next"]
    expected = acc.campaign_values(
        attrs["statistics"], attrs["timeframe"], conv, attrs["group_by"], attrs["filter"]
    )["results"]
    assert rows == expected and len(rows) > 2
    assert all(set(row["groupings"]) == set(attrs["group_by"]) for row in rows)


@pytest.mark.parametrize(
    "attrs,pointer",
    [
        ({"statistics": ["nope"]}, "/data/attributes/statistics"),
        ({"timeframe": {"key": "last_2_days"}}, "/data/attributes/timeframe/key"),
        (
            {"timeframe": {"start": "2023-01-01T00:00:00", "end": "2024-06-01T00:00:00"}},
            "/data/attributes/timeframe",
        ),
        ({"conversion_metric_id": "NOPE00"}, "/data/attributes/conversion_metric_id"),
        ({"conversion_metric_id": None}, "/data/attributes/conversion_metric_id"),
        ({"group_by": ["send_channel"]}, "/data/attributes/group_by"),
        ({"filter": "equals(send_channel,'fax')"}, "/data/attributes/filter"),
        ({"filter": "or(equals(campaign_id,'a'),equals(campaign_id,'b'))"}, "/data/attributes/filter"),
    ],
)
def test_report_body_validation_400(
    shared_emu: Emulator, validate_response: Any, attrs: dict[str, Any], pointer: str
) -> None:
    emu = shared_emu
    conv = emu.account.metric_id("Placed Order", "shopify")
    base = {"statistics": ["opens"], "timeframe": {"key": "last_30_days"}, "conversion_metric_id": conv}
    base.update(attrs)
    body = _report("campaign-values-report", **{k: v for k, v in base.items() if v is not None})
    r = session_for(emu).post(f"{emu.base_url}/campaign-values-reports", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["source"] == {"pointer": pointer}
    validate_response(r)


def test_report_type_interval_and_method_checks(shared_emu: Emulator) -> None:
    emu = shared_emu
    s = session_for(emu)
    conv = emu.account.metric_id("Placed Order", "shopify")
    attrs = {"statistics": ["opens"], "timeframe": {"key": "last_90_days"}, "conversion_metric_id": conv}
    r = s.post(f"{emu.base_url}/flow-values-reports", json=_report("campaign-values-report", **attrs))
    assert r.status_code == 400 and r.json()["errors"][0]["source"] == {"pointer": "/data/type"}
    r = s.post(f"{emu.base_url}/flow-series-reports", json=_report("flow-series-report", **attrs))
    assert r.status_code == 400  # interval is required
    r = s.post(
        f"{emu.base_url}/flow-series-reports",
        json=_report("flow-series-report", interval="daily", **attrs),
    )
    assert r.status_code == 400 and "60 days" in r.json()["errors"][0]["detail"]
    r = s.post(f"{emu.base_url}/flow-values-reports", data=b"{not json")
    assert r.status_code == 400
    assert s.get(f"{emu.base_url}/flow-values-reports").status_code == 405
    assert s.post(f"{emu.base_url}/flows", json={}).status_code == 405


def test_report_rate_limits_including_daily_budget(emu: Emulator, validate_response: Any) -> None:
    now = [1000.0]
    emu.rate_limiter = RateLimiter(clock=lambda: now[0])
    emu.config.rate_limit_scale = 0.01  # 1/s, 2/m -> 1/m, 225/d -> 2/d
    s = session_for(emu)
    conv = emu.account.metric_id("Placed Order", "shopify")
    body = _report(
        "campaign-values-report",
        statistics=["opens"],
        timeframe={"key": "last_30_days"},
        conversion_metric_id=conv,
    )
    url = f"{emu.base_url}/campaign-values-reports"
    assert s.post(url, json=body).status_code == 200
    r = s.post(url, json=body)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    now[0] += 61
    assert s.post(url, json=body).status_code == 200
    now[0] += 61
    r = s.post(url, json=body)  # daily budget (2) exhausted
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) == 86400 - 1122
    assert r.json()["errors"][0]["code"] == "throttled"
    validate_response(r)
    # other report endpoints keep their own budget
    flow_body = {"data": dict(body["data"], type="flow-values-report")}
    assert s.post(f"{emu.base_url}/flow-values-reports", json=flow_body).status_code == 200
