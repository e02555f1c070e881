"""Indexed paging of large collections (cached sorted index + bisection) against the full re-sort.

Every case pages an endpoint to the end twice, once through the index (``INDEX_MIN_RECORDS`` = 1, so
even small tables take it) and once through the reference path that filters and sorts the whole
collection per page, and requires byte-identical response bodies, next links included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from klaviyo_emulator import Account, AccountSpec, Emulator, EmulatorConfig
from klaviyo_emulator import handlers as H
from klaviyo_emulator import server as S
from klaviyo_emulator.account import fmt_dt

SPEC = AccountSpec(seed=11, profiles=1200, large_list_members=1100, events=300)
BASE = "http://emu.test/api"
INDEXED, FULL = 1, 10**9


@pytest.fixture(scope="module")
def account() -> Account:
    return Account(SPEC)


def _emu(account: Account) -> Emulator:
    return Emulator(EmulatorConfig(account=SPEC, rate_limit_scale=0), account=account)


def _page(emu: Emulator, path: str, params: dict[str, str]) -> str:
    routed = emu.route(path)
    assert routed is not None, path
    op, parent = routed
    body, _ = emu.build_body(op, parent, params, urlencode(params), path, BASE)
    return body


def _next_params(body: str) -> dict[str, str] | None:
    nxt = json.loads(body)["links"]["next"]
    return dict(parse_qsl(urlsplit(nxt).query, keep_blank_values=True)) if nxt else None


def _walk(emu: Emulator, path: str, params: dict[str, str], threshold: int) -> list[str]:
    old = S.INDEX_MIN_RECORDS
    S.INDEX_MIN_RECORDS = threshold
    try:
        bodies = []
        cur: dict[str, str] | None = dict(params)
        while cur is not None:
            bodies.append(_page(emu, path, cur))
            cur = _next_params(bodies[-1])
            assert len(bodies) < 2000
        return bodies
    finally:
        S.INDEX_MIN_RECORDS = old


def _same(emu: Emulator, path: str, params: dict[str, str]) -> list[str]:
    indexed = _walk(emu, path, params, INDEXED)
    full = _walk(emu, path, params, FULL)
    assert indexed == full, (path, params)
    return indexed


def _ids(bodies: list[str]) -> list[str]:
    return [d["id"] for b in bodies for d in json.loads(b)["data"]]


def _mid(values: list[datetime]) -> datetime:
    return sorted(values)[len(values) // 2]


def _profile_cases(acc: Account) -> Iterator[dict[str, str]]:
    updated = [p["updated"] for p in acc.profiles_by_id.values()]
    created = [p["created"] for p in acc.profiles_by_id.values()]
    u1 = fmt_dt(sorted(updated)[len(updated) // 4])  # an exact record value: tests the bound itself
    u2 = fmt_dt(_mid(updated) + timedelta(microseconds=500_001))
    c1 = fmt_dt(_mid(created))
    sorts = [None, "updated", "-updated", "created", "-created", "email", "-email", "id", "-id"]
    sorts += ["subscriptions.email.marketing.suppression.timestamp"]
    for sort in sorts:
        base = {"page[size]": "100"} | ({"sort": sort} if sort else {})
        yield base
        yield base | {"filter": f"greater-than(updated,{u1}),less-than(updated,{u2})"}
    for sort in ("updated", "-updated"):
        yield {"page[size]": "9", "sort": sort, "filter": f"greater-than(updated,{u2})"}
        yield {"page[size]": "9", "sort": sort, "filter": f"less-than(updated,{u1})"}
        yield {"page[size]": "50", "sort": sort, "filter": f"greater-than(created,{c1})"}
        # after all of the account's data (it ends 2026-11-01) yet in the past: Klaviyo rejects future datetimes
        yield {"page[size]": "50", "sort": sort, "filter": "greater-than(updated,2026-11-20T00:00:00Z)"}
    first = acc.profiles_by_id[sorted(acc.profiles_by_id)[3]]
    yield {"page[size]": "20", "sort": "updated", "filter": f"equals(email,'{first['email']}')"}
    yield {"filter": "equals(subscriptions.email.marketing.suppression.reason,'UNSUBSCRIBE')"}
    yield {
        "page[size]": "5",
        "sort": "-subscriptions.email.marketing.suppression.timestamp",
        "filter": "greater-than(subscriptions.email.marketing.suppression.timestamp,2020-01-01T00:00:00Z)",
    }
    yield {"page[size]": "100", "sort": "updated", "additional-fields[profile]": "subscriptions"}


def test_profiles_indexed_paging_matches_full_sort(account: Account) -> None:
    emu = _emu(account)
    for params in _profile_cases(account):
        _same(emu, "/api/profiles", params)
    everything = _same(emu, "/api/profiles", {"page[size]": "100", "sort": "updated"})
    assert sorted(_ids(everything)) == sorted(account.profiles_by_id)


def _member_cases(joined: list[datetime]) -> Iterator[dict[str, str]]:
    j1 = fmt_dt(sorted(joined)[len(joined) // 3])
    j2 = fmt_dt(sorted(joined)[2 * len(joined) // 3])
    j3 = (_mid(joined) - timedelta(microseconds=1)).isoformat()
    for sort in (None, "joined_group_at", "-joined_group_at"):
        base = {"page[size]": "100"} | ({"sort": sort} if sort else {})
        yield base
        yield base | {"filter": f"greater-or-equal(joined_group_at,{j1}),less-than(joined_group_at,{j2})"}
        yield base | {"filter": f"greater-than(joined_group_at,{j1}),less-or-equal(joined_group_at,{j2})"}
        yield base | {"page[size]": "13", "filter": f"greater-than(joined_group_at,{j3})"}
        yield base | {"filter": "any(email,['ada.smith1@example.com','ben.khan2@example.com'])"}


@pytest.mark.parametrize("kind", ["lists", "segments"])
def test_members_indexed_paging_matches_full_sort(account: Account, kind: str) -> None:
    emu = _emu(account)
    groups = account.lists_by_id if kind == "lists" else account.segments_by_id
    for gid, group in groups.items():
        joined = list(group["members"].values())
        cases = list(_member_cases(joined)) if joined else [{"page[size]": "10"}]
        for params in cases:
            bodies = _same(emu, f"/api/{kind}/{gid}/profiles", params)
            if "filter" not in params:
                assert sorted(_ids(bodies)) == sorted(group["members"])
            _same(emu, f"/api/{kind}/{gid}/relationships/profiles", params)


def test_small_tables_indexed_paging_matches_full_sort(account: Account) -> None:
    emu = _emu(account)
    flow = next(iter(account.flows_by_id.values()))
    for sort in ("updated", "-updated", "name", "-status", None):
        base = {"page[size]": "1"} | ({"sort": sort} if sort else {})
        _same(emu, "/api/flows", base)
        _same(emu, "/api/flows", base | {"filter": f"equals(updated,{fmt_dt(flow['updated'])})"})
        _same(emu, "/api/flows", base | {"filter": f"less-or-equal(created,{fmt_dt(flow['created'])})"})
    for channel in ("email", "sms"):
        for sort in ("updated_at", "-scheduled_at", "name"):
            flt = f"equals(messages.channel,'{channel}')"
            _same(emu, "/api/campaigns", {"page[size]": "2", "sort": sort, "filter": flt})
    _same(emu, "/api/metrics", {})
    _same(emu, "/api/lists", {"page[size]": "3", "sort": "-updated"})


Mutation = Callable[[Account], Any]

MUTATIONS: list[tuple[str, Mutation]] = [
    ("update_profiles", lambda a: a.update_profiles(sorted(a.profiles_by_id)[::7], at=a.now)),
    ("update_profiles_past", lambda a: a.update_profiles(sorted(a.profiles_by_id)[5::11], at=a.start)),
    ("add_profiles", lambda a: a.add_profiles(30)),
    ("suppress", lambda a: a.suppress_profile(sorted(a.profiles_by_id)[40], "HARD_BOUNCE")),
    (
        "add_members",
        lambda a: [a.add_list_member(a.list_ids()[1], p) for p in sorted(a.profiles_by_id)[-40:]],
    ),
    (
        "add_members_past",
        lambda a: [a.add_list_member(a.list_ids()[1], p, a.start) for p in sorted(a.profiles_by_id)[:25]],
    ),
    (
        "remove_members",
        lambda a: [
            a.remove_list_member(a.list_ids()[1], p) for p in sorted(a.list_members(a.list_ids()[1]))[::9]
        ],
    ),
]


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
@pytest.mark.parametrize("desc", [False, True])
def test_mutation_between_pages_matches_full_sort(name: str, mutate: Mutation, desc: bool) -> None:
    """Page 3 pages, mutate the account, then finish: both paths must see the same thing."""
    accounts = {INDEXED: Account(SPEC), FULL: Account(SPEC)}
    lid = accounts[FULL].list_ids()[1]
    prefix = "-" if desc else ""
    endpoints = [
        ("/api/profiles", {"page[size]": "100", "sort": prefix + "updated"}),
        (f"/api/lists/{lid}/profiles", {"page[size]": "100", "sort": prefix + "joined_group_at"}),
    ]
    for path, params in endpoints:
        results: dict[int, list[str]] = {}
        for threshold, acc in accounts.items():
            emu = _emu(acc)
            old = S.INDEX_MIN_RECORDS
            S.INDEX_MIN_RECORDS = threshold
            try:
                bodies = []
                cur: dict[str, str] | None = dict(params)
                while cur is not None:
                    if len(bodies) == 3:
                        mutate(acc)
                    bodies.append(_page(emu, path, cur))
                    cur = _next_params(bodies[-1])
            finally:
                S.INDEX_MIN_RECORDS = old
            results[threshold] = bodies
        assert results[INDEXED] == results[FULL], (name, path)


def test_index_built_once_per_version_and_rebuilt_after_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    acc = Account(SPEC)
    emu = _emu(acc)
    calls = {"members": 0}
    real = H.Members.__call__

    def counting(self: H.Members, a: Account, pid: str | None) -> list[dict[str, Any]]:
        calls["members"] += 1
        return real(self, a, pid)

    monkeypatch.setattr(H.Members, "__call__", counting)
    monkeypatch.setattr(S, "INDEX_MIN_RECORDS", 1000)
    lid = acc.list_ids()[1]
    assert len(acc.list_members(lid)) >= 1000
    params = {"page[size]": "100", "sort": "joined_group_at"}
    bodies = _walk(emu, f"/api/lists/{lid}/profiles", params, 1000)
    assert len(bodies) == 11 and calls["members"] == 1
    acc.add_list_member(lid, sorted(acc.profiles_by_id)[0])
    _page(emu, f"/api/lists/{lid}/profiles", params)
    _page(emu, f"/api/lists/{lid}/profiles", params)
    assert calls["members"] == 2
    # below the threshold every page re-reads the whole (small) collection
    small = acc.list_ids()[2]
    _page(emu, f"/api/lists/{small}/profiles", params)
    assert calls["members"] == 3


def test_every_public_mutation_bumps_the_version() -> None:
    acc = Account(AccountSpec(seed=3, profiles=40, events=50))
    pid = sorted(acc.profiles_by_id)[0]
    lid = acc.list_ids()[1]
    camp = next(iter(acc.campaigns_by_id))
    steps: list[Mutation] = [
        lambda a: a.add_events(2),
        lambda a: a.add_profiles(1),
        lambda a: a.update_profiles(1),
        lambda a: a.add_list_member(lid, pid),
        lambda a: a.remove_list_member(lid, pid),
        lambda a: a.suppress_profile(pid, "UNSUBSCRIBE"),
        lambda a: a.unsuppress_profile(pid),
        lambda a: a.add_metric("Custom Thing"),
        lambda a: a.add_campaign("sms"),
        lambda a: a.update_campaign(camp, status="Sent"),
        lambda a: a.delete_list(acc.list_ids()[0]),
        lambda a: a.bump(),
    ]
    for step in steps:
        before = acc.version
        step(acc)
        assert acc.version > before
