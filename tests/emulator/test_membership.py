"""Membership changes between runs (deleting a profile, adding lists) and `GET /api/segments/{id}`."""

from __future__ import annotations

import requests

from klaviyo_emulator import Account, AccountSpec, Emulator, registry
from klaviyo_emulator.store import Store

from .conftest import get_all, session_for


def _member_ids(s: requests.Session, url: str) -> set[str]:
    items, _ = get_all(s, url, {"page[size]": "100"})
    return {p["id"] for p in items}


def test_a_deleted_profile_leaves_every_list_and_segment_and_is_no_longer_listed(emu: Emulator) -> None:
    acc, s = emu.account, session_for(emu)
    segment = acc.segment_ids()[0]
    person = sorted(acc.segment_members(segment))[0]
    groups = [g for g in acc.list_ids() if person in acc.list_members(g)]
    assert groups, "the person must be in a list too"
    version = acc.version

    acc.delete_profile(person)

    assert acc.version > version and person not in acc.profile_ids()
    assert person not in _member_ids(s, f"{emu.base_url}/profiles")
    assert person not in _member_ids(s, f"{emu.base_url}/segments/{segment}/profiles")
    for list_id in groups:
        assert person not in acc.list_members(list_id)
        assert person not in _member_ids(s, f"{emu.base_url}/lists/{list_id}/relationships/profiles")
        assert acc.lists_by_id[list_id]["updated"] == acc.now


def test_added_lists_hold_the_profiles_in_turn_and_are_served(emu: Emulator) -> None:
    acc, s = emu.account, session_for(emu)
    profiles = sorted(acc.profile_ids())

    ids = acc.add_lists(2, 50)

    assert ids == ["Bench00", "Bench01"]
    assert sorted(acc.list_members("Bench00")) == sorted(profiles[:50])
    assert sorted(acc.list_members("Bench01")) == sorted(profiles[50:] + profiles[: 100 - len(profiles)])
    assert _member_ids(s, f"{emu.base_url}/lists/Bench01/profiles") == set(acc.list_members("Bench01"))


def test_a_segment_is_served_with_its_profile_count_only_when_asked(emu: Emulator) -> None:
    acc, s = emu.account, session_for(emu)
    segment = acc.segment_ids()[0]
    url = f"{emu.base_url}/segments/{segment}"

    plain = s.get(url).json()["data"]
    counted = s.get(url, params={"additional-fields[segment]": "profile_count"}).json()["data"]

    assert plain["id"] == segment and "profile_count" not in plain["attributes"]
    assert counted["attributes"]["profile_count"] == len(acc.segment_members(segment)) > 0
    assert "profile_count" not in s.get(f"{emu.base_url}/segments").json()["data"][0]["attributes"]
    assert s.get(f"{emu.base_url}/segments/NOPE").status_code == 404


def test_a_segments_profile_count_is_served_at_one_a_second(emu: Emulator) -> None:
    emu.config.rate_limit_scale = 1.0
    s = session_for(emu)
    url = f"{emu.base_url}/segments/{emu.account.segment_ids()[0]}"
    plain = [s.get(url).status_code for _ in range(3)]
    counted = [
        s.get(url, params={"additional-fields[segment]": "profile_count"}).status_code for _ in range(3)
    ]
    assert plain == [200] * 3
    assert counted.count(429) >= 1  # 1/s: three requests span at most two windows


def test_the_added_domains_leave_the_accounts_random_draws_as_they_were() -> None:
    """They draw from RNGs of their own: the account's RNG (hence every record added later, e.g. by
    add_profiles) and its records are what the built-in seeding alone makes."""
    built_in = Store(AccountSpec(seed=11, profiles=80, events=400))
    for step in registry._BUILTIN_SEEDING:
        step(built_in)
    account = Account(AccountSpec(seed=11, profiles=80, events=400))
    assert account.rng.getstate() == built_in.rng.getstate()
    assert account.profiles_by_id == built_in.profiles_by_id
    assert account.events_by_id == built_in.events_by_id
    assert account.reviews_by_id and account.object_records_by_type and account.recipient_estimations_by_id
