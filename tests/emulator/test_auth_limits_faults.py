"""Auth, revision, scopes, rate limits, fault injection, mutations and the request log."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from klaviyo_emulator import Emulator, Fault, RequestInfo

from .conftest import get_all, session_for

EXAMPLES = Path("/work/shared/klaviyo/examples/errors")


def test_bad_or_missing_key_returns_401_shaped_like_klaviyo(emu: Emulator) -> None:
    for headers in ({"Authorization": "Klaviyo-API-Key pk_wrong"}, {"Authorization": ""}):
        r = requests.get(f"{emu.base_url}/events", headers={**emu.headers(), **headers})
        assert r.status_code == 401
        err = r.json()["errors"][0]
        assert err["code"] == "not_authenticated" and err["detail"] == "Missing or invalid private key."
        assert set(err) == {"id", "status", "code", "title", "detail", "source"}
        if EXAMPLES.exists():
            real = json.loads((EXAMPLES / "http401_not_authenticated_klaviyo4s.json").read_text())["errors"][
                0
            ]
            assert {k: v for k, v in err.items() if k != "id"} == {k: v for k, v in real.items() if k != "id"}


def test_api_key_can_be_revoked_mid_run(emu: Emulator) -> None:
    s = session_for(emu)
    assert s.get(f"{emu.base_url}/metrics").status_code == 200
    emu.config.api_key = "pk_rotated"
    assert s.get(f"{emu.base_url}/metrics").status_code == 401


def test_missing_revision_400_and_unknown_revision_404(emu: Emulator) -> None:
    h = emu.headers()
    del h["revision"]
    r = requests.get(f"{emu.base_url}/events", headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["source"] == {"parameter": "revision"}
    r = requests.get(f"{emu.base_url}/events", headers={**emu.headers(), "revision": "2024-10-15"})
    assert r.status_code == 404 and "No valid revisions found" in r.json()["errors"][0]["detail"]


def test_denied_scope_returns_403_naming_scope(emu: Emulator) -> None:
    emu.config.denied_scopes = {"events:read"}
    s = session_for(emu)
    r = s.get(f"{emu.base_url}/events")
    assert r.status_code == 403
    err = r.json()["errors"][0]
    assert err["code"] == "permission_denied" and "events:read" in err["detail"]
    assert s.get(f"{emu.base_url}/metrics").status_code == 200


def test_burst_rate_limit_returns_429_with_retry_after(emu: Emulator) -> None:
    emu.config.rate_limit_scale = 0.01  # flows: 3/s -> 1/s ; events 350/s -> 3/s
    s = session_for(emu)
    statuses = [s.get(f"{emu.base_url}/events") for _ in range(6)]
    ok = [r for r in statuses if r.status_code == 200]
    limited = [r for r in statuses if r.status_code == 429]
    assert ok and limited
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(ok[0].headers)
    ra = int(limited[0].headers["Retry-After"])
    assert 1 <= ra <= 60
    err = limited[0].json()["errors"][0]
    assert err["code"] == "throttled" and err["detail"].startswith(
        "Request was throttled. Expected available in"
    )
    # other operations have their own counters
    assert s.get(f"{emu.base_url}/metrics").status_code == 200


def test_fail_next_and_fault_hook(emu: Emulator) -> None:
    s = session_for(emu)
    emu.fail_next(2, status=503)
    assert [s.get(f"{emu.base_url}/metrics").status_code for _ in range(3)] == [503, 503, 200]
    emu.fail_next(1, status=429, retry_after=7)
    r = s.get(f"{emu.base_url}/metrics")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"

    def hook(info: RequestInfo) -> Fault | None:
        return Fault(status=500) if info.operation_id == "get_lists" else None

    emu.fault_hook = hook
    assert s.get(f"{emu.base_url}/lists").status_code == 500
    assert s.get(f"{emu.base_url}/metrics").status_code == 200


@pytest.mark.parametrize(
    "knob", ["fault_429_rate", "fault_5xx_rate", "fault_drop_rate", "fault_bad_json_rate"]
)
def test_each_fault_rate_knob_produces_its_fault(emu: Emulator, knob: str) -> None:
    setattr(emu.config, knob, 1.0)
    emu.config.fault_retry_after = 3
    s = session_for(emu)
    if knob == "fault_drop_rate":
        with pytest.raises(requests.ConnectionError):
            s.get(f"{emu.base_url}/metrics")
        return
    r = s.get(f"{emu.base_url}/metrics")
    if knob == "fault_429_rate":
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    elif knob == "fault_5xx_rate":
        assert r.status_code in (500, 502, 503) and r.json()["errors"][0]["code"]
    else:
        assert r.status_code == 200
        with pytest.raises(ValueError):
            json.loads(r.content)


def test_latency_knob_slows_responses(emu: Emulator) -> None:
    emu.config.latency_ms = 120
    s = session_for(emu)
    s.get(f"{emu.base_url}/metrics")
    assert emu.request_log[-1].elapsed_s >= 0.1


def test_request_log_records_requests_without_authorization(emu: Emulator) -> None:
    emu.clear_log()
    s = session_for(emu)
    s.get(
        f"{emu.base_url}/events",
        params={"page[size]": "5", "filter": "greater-than(datetime,2020-01-01T00:00:00Z)"},
    )
    (entry,) = emu.request_log
    assert entry.operation_id == "get_events" and entry.status == 200 and entry.records == 5
    assert entry.query["filter"] == "greater-than(datetime,2020-01-01T00:00:00Z)"
    assert emu.api_key not in repr(emu.request_log)


def test_mutations_visible_in_subsequent_responses(emu: Emulator) -> None:
    acc = emu.account
    s = session_for(emu)
    mid = acc.metric_id("Clicked Email") or ""
    before = len(acc.events_for_metric(mid))
    new = acc.add_events(25, "Clicked Email")
    items, _ = get_all(
        s, f"{emu.base_url}/events", {"filter": f"equals(metric_id,'{mid}')", "page[size]": "1000"}
    )
    assert len(items) == before + 25 and set(new) <= {i["id"] for i in items}

    acc.now = acc.now + timedelta(days=1)
    pids = acc.update_profiles(3)
    cutoff = (acc.now - timedelta(seconds=1)).isoformat()
    items, _ = get_all(s, f"{emu.base_url}/profiles", {"filter": f"greater-than(updated,{cutoff})"})
    assert {i["id"] for i in items} == set(pids)

    new_p = acc.add_profiles(2)
    lst = acc.list_ids()[0]
    acc.add_list_member(lst, new_p[0])
    items, _ = get_all(s, f"{emu.base_url}/lists/{lst}/profiles")
    assert [i["id"] for i in items] == [new_p[0]]
    acc.remove_list_member(lst, new_p[0])
    assert get_all(s, f"{emu.base_url}/lists/{lst}/profiles")[0] == []

    acc.suppress_profile(new_p[1], "SPAM_COMPLAINT")
    r = s.get(
        f"{emu.base_url}/profiles",
        params={"filter": "equals(subscriptions.email.marketing.suppression.reason,'SPAM_COMPLAINT')"},
    )
    assert new_p[1] in {p["id"] for p in r.json()["data"]}
    acc.unsuppress_profile(new_p[1])
    assert new_p[1] not in acc.suppressed_profiles()

    cid = acc.add_campaign("sms")
    items, _ = get_all(s, f"{emu.base_url}/campaigns", {"filter": "equals(messages.channel,'sms')"})
    assert cid in {i["id"] for i in items}
    acc.now = acc.now + timedelta(hours=1)
    acc.update_campaign(cid)
    items, _ = get_all(
        s,
        f"{emu.base_url}/campaigns",
        {"filter": f"equals(messages.channel,'sms'),greater-or-equal(updated_at,{acc.now.isoformat()})"},
    )
    assert [i["id"] for i in items] == [cid]

    acc.delete_list(lst)
    assert s.get(f"{emu.base_url}/lists/{lst}/profiles").status_code == 404
    new_metric = acc.add_metric("Custom Thing", "api")
    assert new_metric in {m["id"] for m in get_all(s, f"{emu.base_url}/metrics")[0]}


def test_keyset_pagination_has_no_duplicates_under_concurrent_inserts(emu: Emulator) -> None:
    acc = emu.account
    s = session_for(emu)
    r = s.get(f"{emu.base_url}/events", params={"page[size]": "100", "sort": "datetime"})
    seen = [e["id"] for e in r.json()["data"]]
    nxt = r.json()["links"]["next"]
    early = datetime(2000, 1, 1, tzinfo=timezone.utc)
    acc.add_events(5, "Opened Email", start=early, end=early + timedelta(days=1))  # before the cursor
    acc.add_events(5, "Opened Email")  # after the cursor
    while nxt:
        body = s.get(nxt).json()
        seen += [e["id"] for e in body["data"]]
        nxt = body["links"]["next"]
    assert len(seen) == len(set(seen)) == len(acc.all_events()) - 5


def test_seeded_account_is_deterministic() -> None:
    from klaviyo_emulator import Account, AccountSpec

    a, b = (
        Account(AccountSpec(seed=9, events=300, profiles=40)),
        Account(AccountSpec(seed=9, events=300, profiles=40)),
    )
    assert [e["id"] for e in a.all_events()] == [e["id"] for e in b.all_events()]
    assert a.profile_ids() == b.profile_ids()
