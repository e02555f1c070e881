"""Page cursors as Klaviyo takes them, and several API revisions served at once, each with its shapes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import requests

from klaviyo_emulator import Emulator

from .conftest import get_all, session_for
from .test_spec_validation import PATHS as SPEC_PATHS_CHECKED
from .test_spec_validation import _ids as spec_ids

KLAVIYO_BAD_CURSOR = {
    "status": 400,
    "code": "invalid",
    "title": "Invalid input.",
    "detail": "Invalid cursor provided.",
    "source": {"pointer": "/data/"},
}


def _cursor_of(next_url: str) -> str:
    return parse_qs(urlsplit(next_url).query)["page[cursor]"][0]


def _page_ids(http: requests.Session, url: str, params: dict[str, str]) -> tuple[list[str], Any]:
    r = http.get(url, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return [d["id"] for d in body["data"]], body["links"]["next"]


def _padded_cursor(shared_emu: Emulator, http: requests.Session) -> tuple[str, list[str]]:
    """A profiles cursor with base64 padding (so every alteration below changes it), with the ids of
    the page it leads to."""
    url, params = f"{shared_emu.base_url}/profiles", {"page[size]": "3"}
    _, nxt = _page_ids(http, url, params)
    while nxt:
        cursor = _cursor_of(nxt)
        ids, after = _page_ids(http, url, dict(params, **{"page[cursor]": cursor}))
        if cursor.endswith("="):
            return cursor, ids
        nxt = after
    raise AssertionError("no padded profiles cursor in the seeded account")


def _sdk_cut(cursor: str) -> str:
    # what klaviyo-api's _page_cursor_update does with links.next: split at 'page%5Bcursor%5D'
    # (keeping the '='), then URL-decode
    return unquote("=" + quote(cursor, safe=""))


ALTERATIONS: dict[str, Callable[[str], str]] = {
    "as_given": lambda c: c,
    "sdk_leading_equals": _sdk_cut,
    "padding_stripped": lambda c: c.rstrip("="),
    "extra_padding": lambda c: c + "==",
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_cursor_altered_the_way_clients_alter_it_reads_the_same_next_page(
    shared_emu: Emulator, http: requests.Session, alteration: str
) -> None:
    cursor, expected_ids = _padded_cursor(shared_emu, http)
    altered = ALTERATIONS[alteration](cursor)
    ids, _ = _page_ids(http, f"{shared_emu.base_url}/profiles", {"page[size]": "3", "page[cursor]": altered})
    assert ids == expected_ids and len(ids) == 3


def _other_sort_cursor(shared_emu: Emulator, http: requests.Session) -> str:
    _, nxt = _page_ids(http, f"{shared_emu.base_url}/profiles", {"page[size]": "3", "sort": "-created"})
    return str(_cursor_of(nxt))


BAD_CURSORS: dict[str, Callable[[Emulator, requests.Session], str]] = {
    "not_base64": lambda e, h: "garbage!",
    "base64_of_no_cursor": lambda e, h: base64.b64encode(b"next::id::01F3ZZ").decode(),
    # encoded twice (%253D): presumably what klaviyo-api sent before 1.2.1 (klaviyo-api-python#9)
    "padding_url_encoded_twice": lambda e, h: _padded_cursor(e, h)[0].replace("=", "%3D"),
    # what Klaviyo's SDK sends when links.next is not https: the whole URL, decoded
    "whole_next_url": lambda e, h: unquote(
        str(_page_ids(h, f"{e.base_url}/profiles", {"page[size]": "3"})[1])
    ),
    "cursor_of_another_sort": _other_sort_cursor,
}


@pytest.mark.parametrize("case", list(BAD_CURSORS))
def test_unusable_cursor_gets_klaviyos_invalid_cursor_error(
    shared_emu: Emulator, http: requests.Session, case: str
) -> None:
    cursor = BAD_CURSORS[case](shared_emu, http)
    r = http.get(f"{shared_emu.base_url}/profiles", params={"page[size]": "3", "page[cursor]": cursor})
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert {k: error[k] for k in KLAVIYO_BAD_CURSOR} == KLAVIYO_BAD_CURSOR


def test_links_base_url_writes_klaviyos_host_into_links(emu: Emulator) -> None:
    emu.config.links_base_url = "https://a.klaviyo.com/api"
    body = session_for(emu).get(f"{emu.base_url}/profiles", params={"page[size]": "5"}).json()
    assert body["links"]["self"] == "https://a.klaviyo.com/api/profiles?page%5Bsize%5D=5"
    assert body["links"]["next"].startswith("https://a.klaviyo.com/api/profiles?")
    assert body["data"][0]["links"]["self"].startswith("https://a.klaviyo.com/api/profiles/")


# ---------------------------------------------------------------------------------------- revisions
@pytest.mark.parametrize("revision", ["2023-02-22", "2026-08-01", "2026-07-15.pre"])
def test_revision_not_served_gets_404_no_valid_revisions(shared_emu: Emulator, revision: str) -> None:
    r = session_for(shared_emu).get(f"{shared_emu.base_url}/profiles", headers={"revision": revision})
    assert r.status_code == 404
    assert r.json()["errors"][0]["detail"] == (
        f"No valid revisions found for method get_profiles at revision {revision}."
    )


def test_emulator_refuses_to_serve_a_revision_it_has_no_spec_for() -> None:
    from klaviyo_emulator import EmulatorConfig

    with pytest.raises(ValueError, match="no spec for revision"):
        Emulator(EmulatorConfig(revisions={"2026-07-15", "2027-01-15"}))


def test_2026_10_15_campaigns_are_omnichannel_without_a_channel_filter(
    shared_emu: Emulator, validate_response_at: Any
) -> None:
    http = session_for(shared_emu)
    http.headers["revision"] = "2026-10-15"
    items, _ = get_all(http, f"{shared_emu.base_url}/campaigns", {"include": "campaign-messages"})
    assert {c["id"] for c in items} == {c["id"] for c in shared_emu.account.campaigns()}
    first = items[0]["attributes"]
    assert set(first) == {"created_at", "updated_at", "definition"} and "name" in first["definition"]
    r = http.get(
        f"{shared_emu.base_url}/campaigns", params={"include": "campaign-messages", "page[size]": "5"}
    )
    validate_response_at("2026-10-15")(r)
    r = http.get(f"{shared_emu.base_url}/campaigns", params={"filter": "equals(messages.channel,'email')"})
    assert r.status_code == 400 and r.json()["errors"][0]["source"] == {"parameter": "filter"}


def test_2026_07_15_campaigns_keep_their_shape_and_required_channel_filter(
    shared_emu: Emulator, validate_response_at: Any
) -> None:
    http = session_for(shared_emu)
    r = http.get(f"{shared_emu.base_url}/campaigns", params={"filter": "equals(messages.channel,'sms')"})
    validate_response_at("2026-07-15")(r)
    assert {c["id"] for c in r.json()["data"]} == {c["id"] for c in shared_emu.account.campaigns("sms")}
    assert "status" in r.json()["data"][0]["attributes"]
    assert http.get(f"{shared_emu.base_url}/campaigns").status_code == 400


def test_campaign_messages_collection_exists_from_2026_10_15_only(
    shared_emu: Emulator, validate_response_at: Any
) -> None:
    http = session_for(shared_emu)
    acc = shared_emu.account
    assert http.get(f"{shared_emu.base_url}/campaign-messages").status_code == 404
    http.headers["revision"] = "2026-10-15"
    items, _ = get_all(
        http, f"{shared_emu.base_url}/campaign-messages", {"page[size]": "7", "sort": "-updated"}
    )
    assert [m["id"] for m in items] == [
        m["id"]
        for m in sorted(acc.campaign_messages_by_id.values(), key=lambda m: (m["updated_at"], m["id"]))
    ][::-1]
    campaign = acc.campaigns("email")[0]
    r = http.get(
        f"{shared_emu.base_url}/campaign-messages",
        params={"filter": f"equals(campaign_id,'{campaign['id']}')", "include": "campaign"},
    )
    validate_response_at("2026-10-15")(r)
    assert [m["id"] for m in r.json()["data"]] == list(campaign["message_ids"])
    r = http.get(f"{shared_emu.base_url}/campaigns/{campaign['id']}/campaign-messages")
    validate_response_at("2026-10-15")(r)
    assert r.json()["data"][0]["attributes"]["definition"]["send_options"] is not None


@pytest.mark.parametrize("path", [p for p in SPEC_PATHS_CHECKED if "campaign" not in p])
def test_endpoints_outside_campaigns_answer_alike_at_both_revisions(
    shared_emu: Emulator, validate_response_at: Any, path: str
) -> None:
    url = shared_emu.base_url + path.format(**spec_ids(shared_emu))
    old, new = session_for(shared_emu), session_for(shared_emu)
    new.headers["revision"] = "2026-10-15"
    at_07, at_10 = old.get(url), new.get(url)
    assert at_07.status_code == at_10.status_code == 200
    validate_response_at("2026-10-15")(at_10)
    assert at_10.json() == at_07.json()
