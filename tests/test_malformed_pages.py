"""A 200 without `data` (or with a JSON:API `errors` document) is a broken page, never the end of a stream."""

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo_emulator import AccountSpec, EmulatorConfig, Fault, run_emulator
from klaviyo_emulator.server import RequestInfo
from tests.helpers import column_values, source_for

# 10 pages of events: the last ones are read in windows
ACCOUNT = AccountSpec(seed=5, profiles=600, events=10000, lists=2, large_list_members=50)

BROKEN_BODIES: Dict[str, Dict[str, Any]] = {
    "empty": {},
    "errors": {"errors": [{"status": 500, "code": "error", "title": "Server error", "detail": "Try again."}]},
}


def first_page(table_path: str) -> Callable[[RequestInfo], bool]:
    return lambda info: info.path.rstrip("/").endswith(table_path) and "page[cursor]" not in info.query


def middle_page(table_path: str) -> Callable[[RequestInfo], bool]:
    """The second page: the first request that follows a `links.next` cursor."""
    return lambda info: info.path.rstrip("/").endswith(table_path) and "page[cursor]" in info.query


def one_parallel_window(table_path: str) -> Callable[[RequestInfo], bool]:
    """The first page of the first bounded window of the parallel read; the same window every time."""
    chosen: Dict[str, Optional[str]] = {"filter": None}

    def matches(info: RequestInfo) -> bool:
        query_filter = info.query.get("filter", "")
        if not info.path.rstrip("/").endswith(table_path) or "page[cursor]" in info.query:
            return False
        if chosen["filter"] is None and "less-than(" in query_filter:
            chosen["filter"] = query_filter
        return query_filter == chosen["filter"]

    return matches


# where the broken page lands: the table and a fresh request matcher per test
PLACES: Dict[str, Tuple[str, Callable[[], Callable[[RequestInfo], bool]]]] = {
    "profiles first page": ("profiles", lambda: first_page("/profiles")),
    "profiles middle page": ("profiles", lambda: middle_page("/profiles")),
    "events parallel window": ("events", lambda: one_parallel_window("/events")),
}


def truth(emu: Any, table: str) -> set:
    if table == "profiles":
        return emu.account.profile_ids()
    return {e["id"] for e in emu.account.all_events()}


def new_pipeline(work_dir: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="klaviyo_malformed",
        pipelines_dir=str(work_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(work_dir / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )


def break_pages(emu: Any, where: Callable[[RequestInfo], bool], body: Dict[str, Any], times: int) -> list:
    """Answers `times` matching requests (every one when negative) with a 200 carrying `body`."""
    broken: list = []

    def hook(info: RequestInfo) -> Optional[Fault]:
        if where(info) and (times < 0 or len(broken) < times):
            broken.append(info.query)
            return Fault(body=body)
        return None

    emu.fault_hook = hook
    return broken


@pytest.mark.parametrize("body", BROKEN_BODIES)
@pytest.mark.parametrize("place", PLACES)
def test_a_broken_200_once_is_retried_and_the_table_is_complete(
    tmp_path: Path, place: str, body: str
) -> None:
    table, matcher = PLACES[place]
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        broken = break_pages(emu, matcher(), BROKEN_BODIES[body], times=1)
        pipeline = new_pipeline(tmp_path)
        pipeline.run(source_for(emu).with_resources(table))
        expected = truth(emu, table)
    assert len(broken) == 1, "the broken page must have been served"
    loaded = column_values(pipeline, table)
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == expected


@pytest.mark.parametrize("body", BROKEN_BODIES)
@pytest.mark.parametrize("place", PLACES)
def test_a_broken_200_that_persists_fails_naming_the_endpoint_and_the_next_run_is_complete(
    tmp_path: Path, place: str, body: str
) -> None:
    table, matcher = PLACES[place]
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        broken = break_pages(emu, matcher(), BROKEN_BODIES[body], times=-1)
        pipeline = new_pipeline(tmp_path)
        with pytest.raises(PipelineStepFailed) as failure:
            pipeline.run(source_for(emu).with_resources(table))
        message = str(failure.value)
        assert len(broken) >= 2, "every attempt at the page must have been broken"
        assert f"GET /{table}" in message and "malformed body" in message
        emu.fault_hook = None
        pipeline.run(source_for(emu).with_resources(table))
        expected = truth(emu, table)
    loaded = column_values(pipeline, table)
    assert len(loaded) == len(set(loaded))
    assert set(loaded) == expected


def test_a_broken_middle_page_of_a_snapshot_table_keeps_the_loaded_snapshot_and_the_next_run_is_complete(
    tmp_path: Path,
) -> None:
    def middle_page_of_members(info: RequestInfo) -> bool:
        return (
            "/lists/" in info.path
            and info.path.rstrip("/").endswith("/profiles")
            and "page[cursor]" in info.query
        )

    members = AccountSpec(seed=5, profiles=600, events=100, lists=2, large_list_members=450)
    with run_emulator(EmulatorConfig(account=members, rate_limit_scale=0)) as emu:
        account = emu.account
        truth = sorted((i, m) for i in account.list_ids() for m in account.list_members(i))
        pipeline = new_pipeline(tmp_path)
        pipeline.run(source_for(emu).with_resources("list_members"))
        broken = break_pages(emu, middle_page_of_members, BROKEN_BODIES["empty"], times=-1)
        with pytest.raises(PipelineStepFailed) as failure:
            pipeline.run(source_for(emu).with_resources("list_members"))
        assert broken and "malformed body" in str(failure.value)
        with pipeline.sql_client() as client:
            kept = sorted(tuple(r) for r in client.execute_sql("select list_id, id from list_members"))
        assert kept == truth
        emu.fault_hook = None
        pipeline.run(source_for(emu).with_resources("list_members"))
    with pipeline.sql_client() as client:
        loaded = sorted(tuple(r) for r in client.execute_sql("select list_id, id from list_members"))
    assert loaded == truth
