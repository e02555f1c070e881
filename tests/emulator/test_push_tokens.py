"""`GET /api/push-tokens`: served as the spec says, filtered on what it allows, refusing the rest."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from klaviyo_emulator import Emulator


@pytest.mark.parametrize(
    "path",
    [
        "/push-tokens",
        "/push-tokens?page[size]=100&include=profile",
        "/push-tokens?filter=equals(platform,'ios')",
    ],
)
def test_a_push_tokens_page_validates_against_the_spec(
    shared_emu: Emulator, http: requests.Session, validate_response: Any, path: str
) -> None:
    response = http.get(shared_emu.base_url + path)
    assert response.status_code == 200, response.text
    validate_response(response)
    assert response.json()["data"]


def test_push_tokens_filter_on_their_profile(shared_emu: Emulator, http: requests.Session) -> None:
    token = next(iter(shared_emu.account.push_tokens_by_id.values()))
    response = http.get(
        shared_emu.base_url + "/push-tokens", params={"filter": f"equals(profile.id,'{token['profile_id']}')"}
    )
    assert [item["id"] for item in response.json()["data"]] == [
        t["id"]
        for t in shared_emu.account.push_tokens_by_id.values()
        if t["profile_id"] == token["profile_id"]
    ]


@pytest.mark.parametrize(
    "query", [{"sort": "created"}, {"page[size]": "101"}, {"filter": "greater-than(created,2024-01-01)"}]
)
def test_push_tokens_refuse_what_the_spec_does_not_allow(
    shared_emu: Emulator, http: requests.Session, query: dict[str, str]
) -> None:
    assert http.get(shared_emu.base_url + "/push-tokens", params=query).status_code == 400
