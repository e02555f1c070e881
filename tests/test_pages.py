"""The fast page path of the event tables (klaviyo/pages.py) gives the very tables the generic path
gives (orjson, `to_row`, `TableShape`), and hands every page it cannot hold exactly to that path."""

import re
from typing import Any, Dict, List

import dlt
import pyarrow as pa
import pytest
import requests
from dlt.common import json

from klaviyo.client import KlaviyoClient
from klaviyo.pages import EventPages
from klaviyo.reader import Query, Reader, _add_included, to_row
from klaviyo.settings import COLUMN_TYPES, DEFAULT_REVISION, EXTRA_ATTRIBUTES, STREAMS
from klaviyo.tables import TableShape
from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
from tests.helpers import source_for
from tests.test_lossless_rows import seed_bags


def event_page(emulator: Any, stream: str) -> bytes:
    """The first page of 1,000 events as Klaviyo's (the emulator's) body, as the stream asks for it."""
    response = requests.get(
        f"{emulator.base_url}/events",
        params={**STREAMS[stream].params, "page[size]": "1000"},
        headers={"Authorization": f"Klaviyo-API-Key {emulator.api_key}", "revision": DEFAULT_REVISION},
        timeout=30,
    )
    response.raise_for_status()
    return response.content


def generic_table(body: bytes, stream: str) -> pa.Table:
    document = json.loadb(body)
    rows = [to_row(item, STREAMS[stream].cursor) for item in document["data"]]
    _add_included(rows, document.get("included") or [])
    return TableShape(COLUMN_TYPES[stream]).table(rows)


def fast_table(body: bytes, stream: str) -> Any:
    document = EventPages(COLUMN_TYPES[stream], _add_included).document(body)
    return None if document is None else document["data"][0]


def as_rows(table: pa.Table) -> List[Dict[str, Any]]:
    """Rows with the JSON columns parsed: the fast path keeps Klaviyo's text, the generic one re-encodes."""
    rows = table.to_pylist()
    for row in rows:
        for name in ("event_properties", EXTRA_ATTRIBUTES):
            if row[name] is not None:
                row[name] = json.loads(row[name])
    return rows


@pytest.mark.parametrize("stream", ["events", "metric_events"])
def test_a_page_of_events_becomes_the_same_table_on_the_fast_path(stream: str, emulator: Any) -> None:
    seed_bags(emulator.account)  # `$` keys, case variants, non-Latin keys, nested lists, mixed types
    body = event_page(emulator, stream)
    generic = generic_table(body, stream)
    fast = fast_table(body, stream)
    assert fast is not None, "a page of the spec's shape takes the fast path"
    assert fast.schema == generic.schema
    assert fast.num_rows == generic.num_rows == 1000
    assert as_rows(fast) == as_rows(generic)
    if stream == "events":  # the included metrics and attributions resolved as by the generic path
        assert fast.column("metric_name").null_count == 0
        assert fast.column("attributed_event_id").null_count < 1000


def test_the_bags_on_the_fast_path_are_the_json_text_klaviyo_sent(emulator: Any) -> None:
    ids = seed_bags(emulator.account)
    body = event_page(emulator, "events")
    table = fast_table(body, "events")
    by_id = dict(
        zip(table.column("id").to_pylist(), table.column("event_properties").to_pylist(), strict=True)
    )
    sent = {item["id"]: item["attributes"]["event_properties"] for item in json.loadb(body)["data"]}
    for event_id in ids["events"]:
        if event_id in by_id:
            assert json.loads(by_id[event_id]) == sent[event_id]


ODD_EVENTS = {  # a change to the page's first event, and what the generic path keeps of it
    "an attribute outside the spec": (r'"uuid":', '"Loyalty Tier":"gold","uuid":'),
    "a fractional timestamp": (r'"timestamp":\d+', '"timestamp":1698890344.5'),
    "a datetime without an offset": (r'("datetime":"[^"]+)\+00:00"', r'\1"'),
    "a relationship outside the spec": (
        r'"relationships":\{',
        '"relationships":{"list":{"data":{"id":"L1"}},',
    ),
}
KEPT = {
    "an attribute outside the spec": {"Loyalty Tier": "gold"},
    "a fractional timestamp": {"timestamp": 1698890344.5},
    "a datetime without an offset": None,  # read as UTC, as Klaviyo means it
    "a relationship outside the spec": {"list_id": "L1"},
}


@pytest.mark.parametrize("odd", sorted(ODD_EVENTS))
def test_a_page_with_an_event_outside_the_spec_takes_the_generic_path(odd: str, emulator: Any) -> None:
    pattern, replacement = ODD_EVENTS[odd]
    body = event_page(emulator, "events").decode()
    odd_body, changed = re.subn(pattern, replacement, body, count=1)
    assert changed == 1
    assert fast_table(odd_body.encode(), "events") is None
    generic = generic_table(odd_body.encode(), "events")
    first = as_rows(generic.slice(0, 1))[0]
    assert first[EXTRA_ATTRIBUTES] == KEPT[odd]
    assert first["datetime"] == generic_table(body.encode(), "events").column("datetime")[0].as_py()


def test_pyarrows_memory_pool_is_restored_after_a_run(emulator: Any, pipeline: dlt.Pipeline) -> None:
    before = pa.default_memory_pool().backend_name
    pipeline.run(source_for(emulator).with_resources("events", "profiles"))
    assert pa.default_memory_pool().backend_name == before


def test_a_long_event_range_is_read_in_windows_as_tables_and_every_event_once() -> None:
    account = AccountSpec(
        seed=3, profiles=50, events=6000, lists=1, large_list_members=10, campaigns_per_channel=1
    )
    with run_emulator(EmulatorConfig(account=account, rate_limit_scale=0)) as emu:
        reader = Reader(KlaviyoClient(emu.api_key, emu.base_url, DEFAULT_REVISION), workers=4)
        pages = list(reader.read_split(Query(STREAMS["events"])))
        expected = sorted(emu.account.events_by_id)

    assert all(isinstance(page, pa.Table) for page in pages), "event pages take the fast path"
    assert len(pages) > 6  # the two head pages, then windows (each ending in a partial page)
    read = [row_id for page in pages for row_id in page.column("id").to_pylist()]
    assert sorted(read) == expected
