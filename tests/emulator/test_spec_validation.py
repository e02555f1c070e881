"""Every endpoint's 200 and error responses validate against the shipped spec (openapi-core)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from klaviyo_emulator import Emulator


def _ids(shared_emu: Emulator) -> dict[str, str]:
    acc = shared_emu.account
    flow = acc.flows()[0]
    action = next(a for a in acc.flow_actions(flow["id"]) if a["message_ids"])
    return {
        "metric": acc.metrics[0]["id"],
        "list": acc.list_ids()[1],
        "segment": acc.segment_ids()[0],
        "campaign": acc.campaigns("email")[0]["id"],
        "flow": flow["id"],
        "action": action["id"],
        "object_type": next(iter(acc.object_types_by_id)),
    }


PATHS = [
    "/accounts",
    "/metrics",
    "/metrics?include=flow-triggers",
    "/metrics/{metric}",
    "/metrics/{metric}?include=flow-triggers&fields[metric]=name",
    "/events",
    "/events?include=metric,profile,attributions&page[size]=50",
    "/events?fields[event]=datetime,timestamp&fields[profile]=email,location.city&include=profile",
    "/profiles",
    "/profiles?additional-fields[profile]=subscriptions,predictive_analytics&page[size]=100",
    "/profiles?include=push-tokens,conversations",
    "/lists",
    "/lists?include=tags,flow-triggers",
    "/lists/{list}",
    "/lists/{list}?additional-fields[list]=profile_count&include=tags,flow-triggers",
    "/lists/{list}/profiles?page[size]=100",
    "/lists/{list}/profiles?additional-fields[profile]=subscriptions",
    "/lists/{list}/relationships/profiles",
    "/segments",
    "/segments?include=tags,flow-triggers",
    "/segments/{segment}/profiles?additional-fields[profile]=subscriptions,predictive_analytics",
    "/campaigns?filter=equals(messages.channel,'email')",
    "/campaigns?filter=equals(messages.channel,'sms')&include=campaign-messages,tags",
    "/campaigns?filter=equals(messages.channel,'mobile_push')&include=campaign-messages",
    "/campaigns/{campaign}/campaign-messages",
    "/campaigns/{campaign}/campaign-messages?include=campaign,template,image",
    "/flows",
    "/flows?include=flow-actions,tags",
    "/flows/{flow}/flow-actions",
    "/flow-actions/{action}/flow-messages",
    "/templates",
    "/templates?additional-fields[template]=definition",
    "/tags",
    "/tags?include=tag-group",
    "/tag-groups",
    "/reviews",
    "/reviews?sort=-updated&page[size]=100",
    "/reviews?filter=greater-or-equal(created,2025-01-01T00:00:00%2B00:00)&sort=created",
    "/reviews?include=events",
    "/segments/{segment}",
    "/segments/{segment}?additional-fields[segment]=profile_count",
    "/segments/{segment}?include=tags,flow-triggers",
    "/object-types",
    "/object-types/{object_type}/object-records?page[size]=100",
    "/campaign-recipient-estimations/{campaign}",
]


@pytest.mark.parametrize("path", PATHS)
def test_every_endpoint_200_validates_against_spec(
    shared_emu: Emulator, http: requests.Session, validate_response: Any, path: str
) -> None:
    url = shared_emu.base_url + path.format(**_ids(shared_emu))
    r = http.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/vnd.api+json"
    validate_response(r)
    body = r.json()
    if "include=" in path:
        assert "included" in body
    else:
        assert "included" not in body


@pytest.mark.parametrize("channel", ["email", "sms", "mobile_push"])
def test_all_pages_of_every_channel_campaigns_validate(
    shared_emu: Emulator, http: requests.Session, validate_response: Any, channel: str
) -> None:
    expected = {c["id"] for c in shared_emu.account.campaigns(channel)}
    assert len(expected) > 2, "the account must have campaigns on more than one page of this channel"
    url: str | None = f"{shared_emu.base_url}/campaigns"
    params: dict[str, str] | None = {
        "filter": f"equals(messages.channel,'{channel}')",
        "include": "campaign-messages",
        "page[size]": "2",
    }
    seen: list[str] = []
    pages = 0
    while url:
        r = http.get(url, params=params)
        assert r.status_code == 200, r.text
        validate_response(r)
        body = r.json()
        seen += [c["id"] for c in body["data"]]
        url, params, pages = body["links"]["next"], None, pages + 1
    assert pages > 1
    assert sorted(seen) == sorted(expected)


def test_every_flows_actions_and_messages_validate(
    shared_emu: Emulator, http: requests.Session, validate_response: Any
) -> None:
    for flow in shared_emu.account.flows():
        for action in shared_emu.account.flow_actions(flow["id"]):
            r = http.get(f"{shared_emu.base_url}/flow-actions/{action['id']}/flow-messages")
            assert r.status_code == 200, r.text
            validate_response(r)
        r = http.get(f"{shared_emu.base_url}/flows/{flow['id']}/flow-actions")
        assert r.status_code == 200, r.text
        validate_response(r)


@pytest.mark.parametrize(
    "path,headers,status",
    [
        ("/events?page[size]=5000", None, 400),
        ("/events?sort=name", None, 400),
        ("/events?bogus=1", None, 400),
        ("/events?filter=equals(name,'x')", None, 400),
        ("/campaigns", None, 400),
        ("/lists/NOPE/profiles", None, 404),
        ("/nope", None, 404),
        ("/events", {"Authorization": "Klaviyo-API-Key wrong"}, 401),
        ("/events", {"revision": "2019-01-01"}, 404),
    ],
)
def test_error_responses_validate_against_spec(
    shared_emu: Emulator,
    http: requests.Session,
    validate_response: Any,
    path: str,
    headers: dict[str, str] | None,
    status: int,
) -> None:
    r = http.get(shared_emu.base_url + path, headers=headers)
    assert r.status_code == status
    err = r.json()["errors"][0]
    assert err["status"] == status and err["id"] and err["code"] and err["title"] and err["detail"]
    if path != "/nope":
        validate_response(r)
