"""Pagination, filter grammar, parameter validation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from klaviyo_emulator import Emulator

from .conftest import get_all


@pytest.mark.parametrize("size", [1000, 7])
def test_events_pagination_visits_every_record_exactly_once(
    shared_emu: Emulator, http: requests.Session, size: int
) -> None:
    mid = shared_emu.account.metric_id("Opened Email")
    assert mid
    items, pages = get_all(
        http,
        f"{shared_emu.base_url}/events",
        {"filter": f"equals(metric_id,'{mid}')", "page[size]": str(size), "sort": "datetime"},
    )
    ids = [i["id"] for i in items]
    expected = {e["id"] for e in shared_emu.account.events_for_metric(mid)}
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert pages == -(-len(expected) // size)
    dts = [i["attributes"]["datetime"] for i in items]
    assert dts == sorted(dts)


def test_all_events_descending_pagination_complete(shared_emu: Emulator, http: requests.Session) -> None:
    items, _ = get_all(http, f"{shared_emu.base_url}/events", {"page[size]": "1000", "sort": "-timestamp"})
    assert [i["id"] for i in items] == [e["id"] for e in reversed(shared_emu.account.all_events())]


def test_next_link_carries_original_params_and_is_null_on_last_page(
    shared_emu: Emulator, http: requests.Session
) -> None:
    flt = "greater-or-equal(datetime,2024-01-01T00:00:00Z)"
    r = http.get(
        f"{shared_emu.base_url}/events", params={"filter": flt, "page[size]": "50", "sort": "datetime"}
    )
    links = r.json()["links"]
    assert links["self"].startswith(shared_emu.base_url + "/events")
    nxt = urlsplit(links["next"])
    assert f"{nxt.scheme}://{nxt.netloc}" == shared_emu.base_url.rsplit("/api", 1)[0]
    q = parse_qs(nxt.query)
    assert (
        q["filter"] == [flt] and q["page[size]"] == ["50"] and q["sort"] == ["datetime"] and q["page[cursor]"]
    )
    r = http.get(f"{shared_emu.base_url}/tag-groups")
    assert r.json()["links"]["next"] is None


def test_profiles_and_list_members_pagination_complete(shared_emu: Emulator, http: requests.Session) -> None:
    items, _ = get_all(http, f"{shared_emu.base_url}/profiles", {"page[size]": "33", "sort": "updated"})
    assert [i["id"] for i in items].__len__() == len(shared_emu.account.profile_ids())
    assert {i["id"] for i in items} == shared_emu.account.profile_ids()
    large = shared_emu.account.list_ids()[1]
    members = shared_emu.account.list_members(large)
    items, pages = get_all(
        http, f"{shared_emu.base_url}/lists/{large}/profiles", {"page[size]": "17", "sort": "joined_group_at"}
    )
    assert sorted(i["id"] for i in items) == sorted(members) and pages == -(-len(members) // 17)
    assert all("joined_group_at" in i["attributes"] for i in items)
    ids, _ = get_all(
        http, f"{shared_emu.base_url}/lists/{large}/relationships/profiles", {"page[size]": "100"}
    )
    assert sorted(i["id"] for i in ids) == sorted(members)
    empty = shared_emu.account.list_ids()[0]
    assert get_all(http, f"{shared_emu.base_url}/lists/{empty}/profiles")[0] == []


def test_filter_datetime_window_with_and_and_various_datetime_forms(
    shared_emu: Emulator, http: requests.Session
) -> None:
    mid = shared_emu.account.metric_id("Received Email")
    lo = datetime(2025, 1, 1, tzinfo=timezone.utc)
    hi = datetime(2025, 7, 1, 12, 30, tzinfo=timezone.utc)
    expected = {e["id"] for e in shared_emu.account.events_for_metric(mid or "") if lo <= e["datetime"] < hi}
    for flt in [
        f'and(equals(metric_id,"{mid}"),greater-or-equal(datetime,2025-01-01T00:00:00Z),less-than(datetime,2025-07-01T12:30:00+00:00))',
        f"equals(metric_id,'{mid}'),greater-or-equal(datetime,2025-01-01T00:00:00),less-than(datetime,2025-07-01T12:30:00.000000Z)",
        f"equals(metric_id,['{mid}']),greater-or-equal(timestamp,{int(lo.timestamp())}),less-than(timestamp,{int(hi.timestamp())})",
    ]:
        items, _ = get_all(http, f"{shared_emu.base_url}/events", {"filter": flt, "page[size]": "1000"})
        assert {i["id"] for i in items} == expected, flt


def test_filter_has_and_profile_and_list_values(shared_emu: Emulator, http: requests.Session) -> None:
    acc = shared_emu.account
    pid = next(e["profile_id"] for e in acc.all_events())
    items, _ = get_all(
        http,
        f"{shared_emu.base_url}/events",
        {"filter": f"equals(profile_id,'{pid}'),has(profile)", "page[size]": "1000"},
    )
    assert {i["id"] for i in items} == {e["id"] for e in acc.all_events() if e["profile_id"] == pid}
    ids = sorted(acc.profile_ids())[:3]
    r = http.get(
        f"{shared_emu.base_url}/profiles",
        params={"filter": "any(id,[" + ",".join(f'"{i}"' for i in ids) + "])"},
    )
    assert sorted(i["id"] for i in r.json()["data"]) == ids
    r = http.get(f"{shared_emu.base_url}/metrics", params={"filter": "equals(integration.name,'Klaviyo')"})
    assert r.status_code == 200 and all(
        m["attributes"]["integration"]["key"] == "klaviyo" for m in r.json()["data"]
    )


def test_filter_suppression_reason_and_timestamp(shared_emu: Emulator, http: requests.Session) -> None:
    supp = shared_emu.account.suppressed_profiles()
    reasons = {s["reason"] for v in supp.values() for s in v}
    assert reasons >= {"HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED"}
    items, _ = get_all(
        http,
        f"{shared_emu.base_url}/profiles",
        {
            "filter": "equals(subscriptions.email.marketing.suppression.reason,'HARD_BOUNCE')",
            "additional-fields[profile]": "subscriptions",
        },
    )
    assert {i["id"] for i in items} == {k for k, v in supp.items() if v[0]["reason"] == "HARD_BOUNCE"}
    for i in items:
        m = i["attributes"]["subscriptions"]["email"]["marketing"]
        assert m["suppression"][0]["reason"] == "HARD_BOUNCE" and m["can_receive_email_marketing"] is False
    items, _ = get_all(
        http,
        f"{shared_emu.base_url}/profiles",
        {
            "filter": "greater-or-equal(subscriptions.email.marketing.suppression.timestamp,"
            "2020-01-01T00:00:00Z)",
            "sort": "subscriptions.email.marketing.suppression.timestamp",
            "page[size]": "100",
        },
    )
    assert {i["id"] for i in items} == set(supp)


@pytest.mark.parametrize(
    "path,params,param",
    [
        ("/events", {"filter": "greater-than(datetime,'2024-01-01T00:00:00Z')"}, "filter"),  # quoted datetime
        ("/events", {"filter": "equals(name,'x')"}, "filter"),  # disallowed field
        ("/events", {"filter": "contains(metric_id,'x')"}, "filter"),  # disallowed operator
        ("/events", {"filter": "any(metric_id,['x'])"}, "filter"),  # list operator not allowed
        ("/events", {"filter": "equals(metric_id,'x'"}, "filter"),  # malformed
        ("/events", {"filter": "equals(metric_id,x)"}, "filter"),  # unquoted string
        ("/events", {"filter": "or(equals(metric_id,'a'),equals(metric_id,'b'))"}, "filter"),
        ("/profiles", {"filter": "greater-or-equal(updated,2024-01-01T00:00:00Z)"}, "filter"),  # strict only
        ("/events", {"page[size]": "1001"}, "page[size]"),
        ("/events", {"page[size]": "0"}, "page[size]"),
        ("/events", {"page[size]": "ten"}, "page[size]"),
        ("/lists", {"page[size]": "11"}, "page[size]"),
        ("/metrics", {"page[size]": "5"}, "page[size]"),  # no page[size] on metrics
        ("/accounts", {"page[size]": "5"}, "page[size]"),
        ("/events", {"sort": "-name"}, "sort"),
        ("/events", {"foo": "bar"}, "foo"),
        ("/events", {"fields[event]": "nope"}, "fields[event]"),
        ("/events", {"include": "lists"}, "include"),
        ("/profiles", {"additional-fields[profile]": "nope"}, "additional-fields[profile]"),
        ("/campaigns", {}, "filter"),
        ("/campaigns", {"filter": "equals(messages.channel,'fax')"}, "filter"),
        ("/campaigns", {"filter": "equals(status,'Sent')"}, "filter"),
    ],
)
def test_invalid_requests_return_400_with_source_parameter(
    shared_emu: Emulator, http: requests.Session, path: str, params: dict[str, str], param: str
) -> None:
    r = http.get(shared_emu.base_url + path, params=params)
    assert r.status_code == 400, r.text
    err = r.json()["errors"][0]
    assert err["code"] == "invalid" and err["title"] == "Invalid input." and err["status"] == 400
    assert err["source"] == {"parameter": param}


def test_campaigns_require_channel_filter_and_filter_by_channel(
    shared_emu: Emulator, http: requests.Session
) -> None:
    for ch in ("email", "sms", "mobile_push"):
        items, _ = get_all(
            http, f"{shared_emu.base_url}/campaigns", {"filter": f"equals(messages.channel,'{ch}')"}
        )
        assert {i["id"] for i in items} == {c["id"] for c in shared_emu.account.campaigns(ch)}
        r = http.get(
            f"{shared_emu.base_url}/campaigns",
            params={"filter": f"equals(messages.channel,'{ch}')", "include": "campaign-messages"},
        )
        assert {m["attributes"]["definition"]["channel"] for m in r.json()["included"]} == {ch}


def test_sparse_fields_include_and_additional_fields(shared_emu: Emulator, http: requests.Session) -> None:
    r = http.get(
        f"{shared_emu.base_url}/events",
        params={
            "fields[event]": "datetime",
            "fields[metric]": "name",
            "include": "metric,profile",
            "page[size]": "300",
        },
    )
    body = r.json()
    assert all(set(e["attributes"]) == {"datetime"} for e in body["data"])
    keys = [(i["type"], i["id"]) for i in body["included"]]
    assert len(keys) == len(set(keys))
    metrics = [i for i in body["included"] if i["type"] == "metric"]
    assert metrics and all(set(m["attributes"]) == {"name"} for m in metrics)
    assert {(i["type"], i["id"]) for i in body["included"]} >= {
        ("profile", e["relationships"]["profile"]["data"]["id"]) for e in body["data"]
    }
    r = http.get(f"{shared_emu.base_url}/profiles", params={"fields[profile]": "email,location.city"})
    for p in r.json()["data"]:
        assert set(p["attributes"]) == {"email", "location"} and set(p["attributes"]["location"]) == {"city"}
    r = http.get(f"{shared_emu.base_url}/profiles")
    assert all("subscriptions" not in p["attributes"] for p in r.json()["data"])
    lst = shared_emu.account.list_ids()[1]
    r = http.get(f"{shared_emu.base_url}/lists/{lst}", params={"additional-fields[list]": "profile_count"})
    assert r.json()["data"]["attributes"]["profile_count"] == len(shared_emu.account.list_members(lst))


def test_dropped_email_metric_exists_with_zero_events_and_decoy_clicked_email(
    shared_emu: Emulator, http: requests.Session
) -> None:
    acc = shared_emu.account
    dropped = acc.metric_id("Dropped Email")
    assert dropped and acc.events_for_metric(dropped) == []
    r = http.get(f"{shared_emu.base_url}/events", params={"filter": f"equals(metric_id,'{dropped}')"})
    assert r.json()["data"] == [] and r.json()["links"]["next"] is None
    decoy = acc.metric_id("Clicked Email", "api")
    assert decoy and decoy != acc.metric_id("Clicked Email") and acc.events_for_metric(decoy)


def test_trailing_slash_and_unknown_ids_and_paths(shared_emu: Emulator, http: requests.Session) -> None:
    assert http.get(f"{shared_emu.base_url}/metrics/").status_code == 200
    for path in ("/lists/NOPE/profiles", "/flows/NOPE/flow-actions", "/metrics/NOPE", "/unknown"):
        r = http.get(shared_emu.base_url + path)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "field", "condition"),
    [
        ("events", "datetime", "greater-than(datetime,{future})"),
        ("events", "datetime", "less-than(datetime,{future})"),
        ("profiles", "updated", "greater-than(updated,{future})"),
        ("campaigns", "updated_at", "equals(messages.channel,'email'),greater-than(updated_at,{future})"),
    ],
)
def test_a_filter_datetime_in_the_future_gets_klaviyos_400(
    shared_emu: Emulator, http: requests.Session, path: str, field: str, condition: str
) -> None:
    future = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=5)
    response = http.get(
        f"{shared_emu.base_url}/{path}",
        params={"filter": condition.format(future=future.strftime("%Y-%m-%dT%H:%M:%S+00:00"))},
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "invalid"
    assert error["detail"] == f"End date may not be in the future: {future:%Y-%m-%dT%H:%M:%S}"
    assert error["source"] == {"pointer": field}


def test_a_filter_datetime_just_past_is_accepted(shared_emu: Emulator, http: requests.Session) -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=2)
    response = http.get(
        f"{shared_emu.base_url}/events",
        params={"filter": f"less-than(datetime,{past.strftime('%Y-%m-%dT%H:%M:%S+00:00')})"},
    )
    assert response.status_code == 200, response.text
