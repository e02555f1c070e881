"""End dates after now: clamped to the run's start, and no request carries a filter date later than now.

The emulator answers a filter date in the future with Klaviyo's 400 ("End date may not be in the
future"), so each case below fails if any request of the run carries one.
"""

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import dlt
import pytest

from klaviyo.client import KlaviyoClient
from tests.helpers import column_values, source_for

FILTER_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def filter_datetimes(emulator: Any) -> List[datetime]:
    return [
        datetime.fromisoformat(value)
        for entry in emulator.request_log
        for value in FILTER_DATETIME.findall(entry.query.get("filter", ""))
    ]


def assert_no_request_failed(emulator: Any) -> None:
    failed = [(e.path, e.query, e.status) for e in emulator.request_log if e.status >= 400]
    assert not failed


@pytest.mark.parametrize(
    "resource",
    [
        "profiles",  # `updated` cursor, greater-than / less-than
        "lists",
        "campaigns",  # `updated_at`, one query per channel
        "flows",
        "forms",
        "images",
        "templates",
        "segments",
        "click",  # an event table (lookback)
        "events",  # every metric (lookback)
        "list_members",  # parallel joined_group_at windows without a cursor
    ],
)
def test_an_end_date_tomorrow_loads_up_to_now_without_a_future_filter(
    emulator: Any, pipeline: dlt.Pipeline, resource: str
) -> None:
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    pipeline.run(source_for(emulator, end_date=tomorrow.isoformat()).with_resources(resource))
    assert_no_request_failed(emulator)
    assert all(value <= datetime.now(timezone.utc) for value in filter_datetimes(emulator))
    assert resource in pipeline.default_schema.tables


@pytest.mark.parametrize("resource", ["click", "events"])
def test_an_end_date_within_the_lookback_loads_events_before_it(
    emulator: Any, pipeline: dlt.Pipeline, resource: str
) -> None:
    now = datetime.now(timezone.utc)
    recent = emulator.account.add_events(
        3, "Clicked Email", start=now - timedelta(minutes=30), end=now - timedelta(minutes=20)
    )
    later = emulator.account.add_events(
        2, "Clicked Email", start=now - timedelta(minutes=9), end=now - timedelta(minutes=8)
    )
    end = now - timedelta(minutes=10)
    pipeline.run(
        source_for(emulator, end_date=end.isoformat(), lookback_seconds=3600).with_resources(resource)
    )
    loaded = set(column_values(pipeline, resource))
    assert set(recent) <= loaded
    assert not set(later) & loaded


def test_parallel_windows_of_a_long_range_stop_at_now(emulator: Any, pipeline: dlt.Pipeline) -> None:
    now = datetime.now(timezone.utc)
    # more than two pages of 1,000, so the rest of the range is read in parallel windows
    recent = emulator.account.add_events(
        2500, "Clicked Email", start=now - timedelta(hours=2), end=now - timedelta(minutes=1)
    )
    pipeline.run(
        source_for(emulator, end_date=(now + timedelta(hours=1)).isoformat(), workers=4).with_resources(
            "click"
        )
    )
    assert_no_request_failed(emulator)
    assert len(filter_datetimes(emulator)) > 4, "the range was not read in windows"
    assert all(value <= datetime.now(timezone.utc) for value in filter_datetimes(emulator))
    assert set(recent) <= set(column_values(pipeline, "click"))


def test_rows_dated_after_now_beyond_the_first_pages_are_paged_not_windowed(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    now = datetime.now(timezone.utc)
    future = emulator.account.add_events(
        2500, "Clicked Email", start=now + timedelta(days=30), end=now + timedelta(days=31)
    )
    pipeline.run(source_for(emulator, workers=4).with_resources("click"))
    assert_no_request_failed(emulator)
    assert set(future) <= set(column_values(pipeline, "click"))


@pytest.mark.parametrize("resource", ["campaign_values_report", "flow_values_report", "flow_series_report"])
def test_report_timeframes_end_no_later_than_now(
    emulator: Any, pipeline: dlt.Pipeline, monkeypatch: pytest.MonkeyPatch, resource: str
) -> None:
    # the reporting API allows 2 requests a minute: a recent start_date keeps this to one or two
    bodies: List[Dict[str, Any]] = []
    paginate = KlaviyoClient.paginate

    def recording_paginate(self: KlaviyoClient, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("body") is not None:
            bodies.append(kwargs["body"])
        return paginate(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(KlaviyoClient, "paginate", recording_paginate)
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    source = source_for(emulator, start_date="2026-10-01", end_date=tomorrow.isoformat())
    pipeline.run(source.with_resources(resource))
    ends = [datetime.fromisoformat(b["data"]["attributes"]["timeframe"]["end"]) for b in bodies]
    assert ends and all(end <= datetime.now(timezone.utc) for end in ends)


def test_a_start_date_in_the_future_is_refused_before_any_request(emulator: Any) -> None:
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    with pytest.raises(ValueError, match="start_date .* is not in the past"):
        source_for(emulator, start_date=tomorrow.isoformat())
    assert emulator.request_log == []
