"""The source against a seeded emulator account: every table equals the account's ground truth."""

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo.settings import ENDPOINTS, METRIC_TABLES
from tests.helpers import column_values, expected_metric_events, source_for, table_counts

REPO = Path(__file__).resolve().parent.parent

DEFAULT_TABLES = {
    "profiles",
    "global_exclusions",
    "lists",
    "list_members",
    "campaigns",
    "metrics",
    *METRIC_TABLES,
}


def test_first_run_loads_every_default_table_equal_to_the_account(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator))

    counts = table_counts(pipeline)
    assert set(counts) >= DEFAULT_TABLES
    assert "events" not in counts  # opt-in
    assert counts["profiles"] == len(account.profile_ids())
    assert counts["global_exclusions"] == len(account.suppressed_profiles())
    assert counts["lists"] == len(account.list_ids())
    assert counts["list_members"] == sum(len(account.list_members(i)) for i in account.list_ids())
    assert counts["campaigns"] == len(account.campaigns())
    assert counts["metrics"] == len(account.metrics)
    for table, names in METRIC_TABLES.items():
        assert set(column_values(pipeline, table)) == expected_metric_events(account, names), table


def test_every_table_has_unique_primary_keys(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(source_for(emulator))
    keys = {table: "id" for table in DEFAULT_TABLES}
    keys["list_members"] = "list_id || '/' || id"
    for table, key in keys.items():
        values = column_values(pipeline, table, key)
        assert len(values) == len(set(values)), table


def test_rows_have_attributes_promoted_and_to_one_relations_as_ids(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator).with_resources("click", "list_members", "campaigns"))
    account = emulator.account
    clicked = account.metric_id("Clicked Email", integration_key="klaviyo")
    event = account.events_for_metric(clicked)[0]
    with pipeline.sql_client() as client:
        row = client.execute_sql(
            "select metric_id, profile_id, timestamp, uuid from click where id = %s", event["id"]
        )[0]
        assert row[0] == clicked
        assert row[1] == event["profile_id"]
        assert row[2] == event["timestamp"]
        columns = {r[0] for r in client.execute_sql("describe list_members")}
        assert {"id", "list_id", "joined_group_at", "email"} <= columns
        assert "links" not in columns and "links__self" not in columns
        channels = {r[0] for r in client.execute_sql("select distinct channel from campaigns")}
    assert channels == {"email", "sms", "mobile_push"}


def test_click_table_leaves_out_the_same_named_metric_of_another_integration(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    decoy = account.metric_id("Clicked Email", integration_key="api")
    assert decoy and account.events_for_metric(decoy), "the seeded account must have a decoy with events"
    pipeline.run(source_for(emulator).with_resources("click"))
    loaded = set(column_values(pipeline, "click"))
    assert loaded and not loaded & {e["id"] for e in account.events_for_metric(decoy)}


def test_tables_without_rows_still_exist_with_typed_columns(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    assert not account.events_for_metric(account.metric_id("Dropped Email", integration_key="klaviyo"))
    pipeline.run(source_for(emulator).with_resources("dropped_email"))
    with pipeline.sql_client() as client:
        assert client.execute_sql("select count(*) from dropped_email")[0][0] == 0
        types = {r[0]: r[1] for r in client.execute_sql("describe dropped_email")}
    assert types["id"] == "VARCHAR"
    assert types["datetime"].startswith("TIMESTAMP")
    assert types["timestamp"] == "BIGINT"


def event_filters(emulator: Any) -> list:
    return [
        entry.query.get("filter", "")
        for entry in emulator.request_log
        if entry.path.rstrip("/").endswith("/events")
    ]


def test_second_run_adds_exactly_the_new_events_and_updated_profiles(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator, lookback_seconds=0))
    first = table_counts(pipeline)
    last_click = max(e["datetime"] for e in account.events_for_metric(account.metric_id("Clicked Email")))

    before, account.now = account.now, account.now + timedelta(hours=2)
    new_events = account.add_events(5, metric_name="Clicked Email", start=before, end=account.now)
    updated = account.update_profiles(3)
    emulator.clear_log()
    info = pipeline.run(source_for(emulator, lookback_seconds=0))

    counts = table_counts(pipeline)
    assert counts["click"] == first["click"] + 5
    assert counts["profiles"] == first["profiles"]
    assert set(new_events) <= set(column_values(pipeline, "click"))
    loaded_rows = info.load_packages and pipeline.last_trace.last_normalize_info.row_counts
    assert loaded_rows["click"] == 5
    assert loaded_rows["profiles"] == 3
    assert {p for p in updated} <= set(column_values(pipeline, "profiles"))
    # the click requests start where the first run stopped, not at the beginning of time
    clicked = account.metric_id("Clicked Email")
    click_filters = [f for f in event_filters(emulator) if clicked in f]
    lower_bounds = [re.search(r"greater-or-equal\(datetime,([^)]+)\)", f) for f in click_filters]
    assert click_filters and all(lower_bounds), click_filters
    assert min(datetime.fromisoformat(b.group(1)) for b in lower_bounds) == last_click.replace(microsecond=0)


def test_members_who_left_a_list_leave_the_table(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    list_id = max(account.list_ids(), key=lambda i: len(account.list_members(i)))
    leaver = sorted(account.list_members(list_id))[0]
    pipeline.run(source_for(emulator).with_resources("list_members"))
    account.remove_list_member(list_id, leaver)
    pipeline.run(source_for(emulator).with_resources("list_members"))
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select count(*) from list_members where list_id = %s and id = %s", list_id, leaver
        )
        total = client.execute_sql("select count(*) from list_members")[0][0]
    assert rows[0][0] == 0
    assert total == sum(len(account.list_members(i)) for i in account.list_ids())


def test_list_members_are_read_a_page_per_hundred_not_a_request_per_member(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator).with_resources("list_members"))
    member_requests = [e for e in emulator.request_log if e.path.rstrip("/").endswith("/profiles")]
    assert member_requests and all(e.query.get("page[size]") == "100" for e in member_requests)
    members = sum(len(emulator.account.list_members(i)) for i in emulator.account.list_ids())
    lists = len(emulator.account.list_ids())
    assert len(member_requests) <= members // 100 + lists


def test_unsuppressed_profiles_leave_global_exclusions(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    suppressed = account.suppressed_profiles()
    reasons_loaded_before = None
    pipeline.run(source_for(emulator).with_resources("global_exclusions"))
    with pipeline.sql_client() as client:
        reasons_loaded_before = {
            r[0] for r in client.execute_sql("select distinct reason from global_exclusions")
        }
    assert reasons_loaded_before == {
        "HARD_BOUNCE",
        "INVALID_EMAIL",
        "SPAM_COMPLAINT",
        "UNSUBSCRIBE",
        "USER_SUPPRESSED",
    }
    released = sorted(suppressed)[0]
    account.unsuppress_profile(released)
    pipeline.run(source_for(emulator).with_resources("global_exclusions"))
    loaded = set(column_values(pipeline, "global_exclusions"))
    assert released not in loaded
    assert loaded == set(account.suppressed_profiles())


def test_extra_metrics_get_a_table_each(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(source_for(emulator, extra_metrics=["Placed Order"]).with_resources("placed_order"))
    account = emulator.account
    metric = account.metric_id("Placed Order", integration_key="shopify")
    expected = {e["id"] for e in account.events_for_metric(metric)}
    assert expected and set(column_values(pipeline, "placed_order")) == expected


def test_events_table_holds_every_metric_when_selected(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(source_for(emulator).with_resources("events"))
    assert set(column_values(pipeline, "events")) == {e["id"] for e in emulator.account.all_events()}


def test_start_and_end_date_bound_the_event_tables(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    events = sorted(account.all_events(), key=lambda e: e["datetime"])
    start, end = events[len(events) // 4]["datetime"], events[len(events) // 2]["datetime"]
    pipeline.run(
        source_for(emulator, start_date=start.isoformat(), end_date=end.isoformat()).with_resources("events")
    )
    expected = {e["id"] for e in events if start <= e["datetime"] < end}
    assert set(column_values(pipeline, "events")) == expected


def test_a_wrong_api_key_stops_the_run_with_an_error_naming_the_key(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    from klaviyo import klaviyo_source

    wrong = "pk_wrong_key_that_must_not_be_printed_123"
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(klaviyo_source(api_key=wrong, base_url=emulator.base_url))
    message = str(failure.value)
    assert "API key" in message and "401" in message
    assert wrong not in message
    assert len(emulator.request_log) <= 5


@pytest.mark.parametrize(
    ("denied", "resource"), [("lists:read", "lists"), ("flows:read", "flows"), ("events:read", "click")]
)
def test_a_key_missing_a_scope_names_the_scope_to_add(
    emulator: Any, pipeline: dlt.Pipeline, denied: str, resource: str
) -> None:
    emulator.config.denied_scopes = {denied}
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator).with_resources(resource))
    message = str(failure.value)
    assert "403" in message and f"needs the scope {denied}" in message


def test_every_endpoint_declares_the_scopes_of_klaviyos_spec() -> None:
    spec = json.loads((REPO / "klaviyo_emulator" / "openapi-2026-07-15-subset.json").read_text())
    for name, endpoint in ENDPOINTS.items():
        operations = spec["paths"]["/api/" + endpoint.path]
        declared = {tuple(op["x-klaviyo-scopes"]) for op in operations.values() if isinstance(op, dict)}
        assert declared == {endpoint.scopes}, name


def test_every_request_carries_the_pinned_revision_and_stays_under_base_url(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator))
    assert emulator.request_log
    for entry in emulator.request_log:
        assert entry.status == 200, entry
        assert entry.path.startswith("/api/")
        # the request line as the emulator received it: path and the raw query string
        assert entry.target.startswith(entry.path)
        assert emulator.api_key not in unquote(entry.target)
        assert not {"api_key", "key", "token"} & set(parse_qs(urlsplit(entry.target).query))
    assert any("?" in entry.target for entry in emulator.request_log), "the check must see query strings"


def test_a_large_list_is_read_in_parallel_windows_with_every_member_once(tmp_path: Any) -> None:
    from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
    from tests.test_reliability import new_pipeline

    spec = AccountSpec(seed=2, profiles=1500, events=100, lists=2, large_list_members=1400)
    with run_emulator(EmulatorConfig(account=spec, rate_limit_scale=0)) as emu:
        pipeline = new_pipeline(tmp_path)
        pipeline.run(source_for(emu, workers=4).with_resources("list_members"))
        account = emu.account
        windowed = [e for e in emu.request_log if "joined_group_at" in e.query.get("filter", "")]
        expected = {
            (list_id, member) for list_id in account.list_ids() for member in account.list_members(list_id)
        }
    assert windowed, "the large list must have been read in windows"
    loaded = column_values(pipeline, "list_members", "list_id || '/' || id")
    assert len(loaded) == len(set(loaded)) == len(expected)
    assert set(loaded) == {f"{list_id}/{member}" for list_id, member in expected}


@pytest.mark.parametrize("table", ["lists", "click", "profiles"])
def test_a_second_pipeline_on_the_dataset_whose_range_has_no_rows_loads_beside_the_first(
    emulator: Any, tmp_path: Path, table: str
) -> None:
    """Backfill ranges and Airflow tasks are pipelines of their own on one dataset: one whose range
    is empty must not change the table that another one filled (it used to add NOT NULL columns)."""

    def pipeline_named(name: str) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=name,
            pipelines_dir=str(tmp_path / "pipelines"),
            destination=dlt.destinations.duckdb(str(tmp_path / "shared.duckdb")),
            dataset_name="klaviyo_data",
        )

    after_everything = "2026-11-20"  # the account's data ends 2026-11-01; still in the past
    pipeline_named("history").run(source_for(emulator).with_resources(table))
    loaded = table_counts(pipeline_named("history"))[table]
    assert loaded > 0
    pipeline_named("recent").run(source_for(emulator, start_date=after_everything).with_resources(table))
    assert table_counts(pipeline_named("recent"))[table] == loaded
