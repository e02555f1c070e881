"""Reviews, custom objects, recipient estimations and the lower tiers of some `additional-fields`."""

from __future__ import annotations

import requests

from klaviyo_emulator import Emulator

from .conftest import get_all, session_for


def _statuses(s: requests.Session, url: str, times: int) -> list[int]:
    return [s.get(url).status_code for _ in range(times)]


def test_predictive_analytics_is_served_at_its_own_lower_tier(emu: Emulator) -> None:
    emu.config.rate_limit_scale = 1.0
    s = session_for(emu)
    plain = _statuses(s, f"{emu.base_url}/profiles?page[size]=1", 25)
    predictive = _statuses(
        s, f"{emu.base_url}/profiles?page[size]=1&additional-fields[profile]=predictive_analytics", 25
    )
    assert plain == [200] * 25  # 75/s
    # 10/s: 25 requests within at most two one-second windows, so at least 5 are throttled
    assert predictive.count(429) >= 5


def test_profile_count_is_served_at_one_a_second(emu: Emulator) -> None:
    emu.config.rate_limit_scale = 1.0
    s = session_for(emu)
    list_id = emu.account.list_ids()[0]
    plain = _statuses(s, f"{emu.base_url}/lists/{list_id}", 3)
    counted = _statuses(s, f"{emu.base_url}/lists/{list_id}?additional-fields[list]=profile_count", 3)
    assert plain == [200] * 3
    assert counted.count(429) >= 1  # 1/s: three requests span at most two windows


def test_reviews_sort_by_updated_and_refuse_a_filter_on_it(emu: Emulator) -> None:
    s = session_for(emu)
    reviews, pages = get_all(s, f"{emu.base_url}/reviews", {"sort": "-updated", "page[size]": "100"})
    updated = [r["attributes"]["updated"] for r in reviews]
    assert len(reviews) == len(emu.account.reviews_by_id) and pages == 3
    assert updated == sorted(updated, reverse=True)
    refused = s.get(
        f"{emu.base_url}/reviews", params={"filter": "greater-than(updated,2025-01-01T00:00:00Z)"}
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["source"] == {"parameter": "filter"}


def test_object_records_are_paged_per_object_type(emu: Emulator) -> None:
    s = session_for(emu)
    for type_id, records in emu.account.object_records_by_type.items():
        served, _ = get_all(s, f"{emu.base_url}/object-types/{type_id}/object-records", {"page[size]": "100"})
        assert [r["id"] for r in served] == sorted(records)
    assert s.get(f"{emu.base_url}/object-types/NOPE/object-records").status_code == 404
