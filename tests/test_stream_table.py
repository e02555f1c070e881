"""The table of streams (klaviyo/settings.py STREAMS) is what the source loads, what README says and
what Klaviyo's spec allows; `workers` bounds each table's requests in flight at the emulator."""

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import dlt
import pytest

from klaviyo.settings import ENDPOINTS, METRIC_TABLES, REPORTS, STREAMS, Stream
from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
from tests.helpers import source_for

REPO = Path(__file__).resolve().parent.parent
SPEC = json.loads((REPO / "klaviyo_emulator" / "openapi-2026-07-15-subset.json").read_text())


def readme_stream_rows() -> Dict[str, Tuple[bool, List[str]]]:
    """README's two tables of "What it loads": table name -> (selected by default, the row's cells)."""
    section = (REPO / "README.md").read_text().split("## What it loads")[1]
    tables = [block for block in section.split("\n\n") if block.startswith("| table | endpoint")]
    rows: Dict[str, Tuple[bool, List[str]]] = {}
    for default, table in zip((True, False), tables, strict=True):
        for line in table.splitlines()[2:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            names = re.findall(r"`(\w+)`", cells[0]) if cells[0].startswith("`") else ["<extra>"]
            for name in names:
                rows[name] = (default, cells)
    return rows


def readme_name(stream_name: str) -> List[str]:
    return [*METRIC_TABLES, "<extra>"] if stream_name == "metric_events" else [stream_name]


STREAM_ROWS = [(name, table) for name in STREAMS for table in readme_name(name)]


@pytest.mark.parametrize(("stream_name", "table"), STREAM_ROWS, ids=[t for _, t in STREAM_ROWS])
def test_readmes_row_of_a_table_says_what_the_stream_table_declares(stream_name: str, table: str) -> None:
    stream = STREAMS[stream_name]
    endpoint = ENDPOINTS[stream.endpoint]
    default, (_, endpoint_cell, key_cell, cursor_cell, limit_cell) = readme_stream_rows()[table]

    assert default == stream.default
    if table != "<extra>":  # "same" as the row above
        assert "/" + endpoint.path in endpoint_cell
    assert set(re.findall(r"`(\w+)`", key_cell)) == {
        *stream.primary_key,
        *([stream.parent_key] if stream.parent else []),
    }
    if stream.write_disposition == "replace":
        assert cursor_cell.startswith("full snapshot")
    else:
        assert cursor_cell == (f"`{stream.cursor}`, merge" if stream.incremental else "merge")
    assert limit_cell.startswith(f"{endpoint.burst_per_second}/s, {endpoint.steady_per_minute}/min")


def test_readme_lists_no_table_the_stream_table_does_not_declare() -> None:
    declared = {table for _, table in STREAM_ROWS}
    assert set(readme_stream_rows()) == declared


def spec_operation(endpoint_name: str) -> Dict[str, Any]:
    endpoint = ENDPOINTS[endpoint_name]
    method = "post" if endpoint_name in REPORTS else "get"
    return SPEC["paths"]["/api/" + endpoint.path][method]


def tier_limits(operation: Dict[str, Any], tier: Tuple[str, str]) -> Dict[str, str]:
    """The lower limits the operation's description gives requests with `parameter=value`."""
    parameter, value = tier
    found = re.search(
        rf"when using the `{re.escape(parameter)}={value}` parameter.*?Burst: `(\S+)`.*?Steady: `(\S+)`",
        operation["description"],
    )
    assert found, f"the spec gives {parameter}={value} no tier of its own"
    return {"burst": found[1], "steady": found[2]}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_an_endpoints_page_size_and_rate_limits_are_klaviyos(name: str) -> None:
    endpoint, operation = ENDPOINTS[name], spec_operation(name)
    page_sizes = [p["schema"].get("maximum") for p in operation["parameters"] if p["name"] == "page[size]"]
    limits = (
        operation["x-klaviyo-ratelimit"] if endpoint.tier is None else tier_limits(operation, endpoint.tier)
    )

    assert endpoint.page_size == (page_sizes[0] if page_sizes else None)
    assert (f"{endpoint.burst_per_second}/s", f"{endpoint.steady_per_minute}/m") == (
        limits["burst"],
        limits["steady"],
    )


def server_filters(operation: Dict[str, Any]) -> Dict[str, List[str]]:
    return {
        field: [op for ops in spec["operators"].values() for op in ops]
        for field, spec in (operation.get("x-klaviyo-filters") or {}).items()
    }


@pytest.mark.parametrize("name", [n for n, s in STREAMS.items() if s.cursor and n not in REPORTS])
def test_a_streams_cursor_filter_and_sort_are_what_klaviyo_allows(name: str) -> None:
    stream: Stream = STREAMS[name]
    operation = spec_operation(stream.endpoint)
    sorts = next(p["schema"]["enum"] for p in operation["parameters"] if p["name"] == "sort")
    allowed = server_filters(operation).get(stream.cursor or "", [])

    assert (f"-{stream.cursor}" if stream.descending else stream.cursor) in sorts
    for operator in stream.cursor_filter:
        assert operator is None or operator in allowed, operator


def test_push_tokens_equal_the_accounts(emulator: Any, pipeline: dlt.Pipeline) -> None:
    tokens = emulator.account.push_tokens_by_id
    pipeline.run(source_for(emulator).with_resources("push_tokens"))

    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select id, token, platform, profile_id, metadata__device_model, extra_attributes from push_tokens"
        )
    assert tokens  # the account has some
    assert {row[0]: row[1:] for row in rows} == {
        token["id"]: (
            token["token"],
            token["platform"],
            token["profile_id"],
            token["metadata"]["device_model"],
            None,  # every attribute has its column
        )
        for token in tokens.values()
    }


def test_push_tokens_are_opt_in(emulator: Any) -> None:
    assert "push_tokens" not in source_for(emulator).selected_resources


class InFlight:
    """Counts each operation's requests the emulator is answering at once (its fault hook sees a
    request arrive, its log sees it answered)."""

    def __init__(self, emulator: Any) -> None:
        self._lock = threading.Lock()
        self.now: Counter = Counter()
        self.peak: Counter = Counter()
        emulator.fault_hook = self.arrived
        log = emulator._log

        def answered(entry: Any) -> None:
            if entry.operation_id:
                with self._lock:
                    self.now[entry.operation_id] -= 1
            log(entry)

        emulator._log = answered

    def arrived(self, info: Any) -> None:
        with self._lock:
            self.now[info.operation_id] += 1
            self.peak[info.operation_id] = max(self.peak[info.operation_id], self.now[info.operation_id])


@pytest.fixture
def busy_emulator() -> Iterator[Any]:
    """Four lists of 900 members (each read in windows) and enough events for windows, each request
    taking 15 ms, so requests overlap whenever the source lets them."""
    spec = AccountSpec(seed=11, profiles=1000, events=10000, lists=3, large_list_members=900)
    with run_emulator(EmulatorConfig(account=spec, rate_limit_scale=0, latency_ms=15)) as emu:
        account = emu.account
        newsletter = next(list_ for list_ in account.lists_by_id.values() if list_["name"] == "Newsletter")
        for number in range(3):
            account.lists_by_id[f"BIG{number}"] = dict(newsletter, id=f"BIG{number}", name=f"Big {number}")
        account.bump()
        yield emu


@pytest.mark.parametrize(
    ("table", "operation"), [("list_members", "get_profiles_for_list"), ("events", "get_events")]
)
def test_workers_bounds_a_tables_requests_in_flight(
    busy_emulator: Any, pipeline: dlt.Pipeline, table: str, operation: str
) -> None:
    in_flight = InFlight(busy_emulator)
    pipeline.run(source_for(busy_emulator, workers=4).with_resources(table))

    assert 2 <= in_flight.peak[operation] <= 4, in_flight.peak
