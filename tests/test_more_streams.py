"""Streams beyond the original connector: each loads from the emulator with exact counts and unique keys."""

from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Set, Tuple

import dlt
import pytest

from klaviyo_emulator import EmulatorConfig, Fault, run_emulator
from tests.conftest import SMALL_ACCOUNT
from tests.helpers import column_values, source_for, table_counts

MORE = (
    "events",
    "segments",
    "segment_members",
    "campaign_messages",
    "flows",
    "flow_actions",
    "flow_messages",
    "templates",
    "tags",
    "tag_groups",
    "catalog_items",
    "catalog_variants",
    "catalog_categories",
    "coupons",
    "coupon_codes",
    "forms",
    "images",
)


def test_more_streams_are_opt_in(emulator: Any) -> None:
    source = source_for(emulator)
    assert not set(MORE) & set(source.selected_resources)
    assert set(MORE) <= set(source.resources)


def _flow_actions(account: Any) -> List[Dict[str, Any]]:
    return [a for f in account.flows() for a in account.flow_actions(f["id"])]


# per table: the key a row is unique by, and the account's keys it must hold
EXPECTED_KEYS: Dict[str, Tuple[str, Callable[[Any], Set[str]]]] = {
    "events": ("id", lambda account: {e["id"] for e in account.all_events()}),
    "segments": ("id", lambda account: set(account.segment_ids())),
    "segment_members": (
        "segment_id || '/' || id",
        lambda account: {f"{s}/{m}" for s in account.segment_ids() for m in account.segment_members(s)},
    ),
    "campaign_messages": ("id", lambda account: set(account.campaign_messages_by_id)),
    "flows": ("id", lambda account: {f["id"] for f in account.flows()}),
    "flow_actions": ("id", lambda account: {a["id"] for a in _flow_actions(account)}),
    "flow_messages": (
        "id",
        lambda account: {m["id"] for a in _flow_actions(account) for m in account.flow_messages(a["id"])},
    ),
    "templates": ("id", lambda account: set(account.templates_by_id)),
    "tags": ("id", lambda account: set(account.tags_by_id)),
    "tag_groups": ("id", lambda account: set(account.tag_groups_by_id)),
    "catalog_items": ("id", lambda account: {i["id"] for i in account.catalog_items()}),
    "catalog_variants": ("id", lambda account: {v["id"] for v in account.catalog_variants()}),
    "catalog_categories": ("id", lambda account: {c["id"] for c in account.catalog_categories()}),
    "coupons": ("id", lambda account: {c["id"] for c in account.coupons()}),
    "coupon_codes": ("id", lambda account: {c["id"] for c in account.coupon_codes()}),
    "forms": ("id", lambda account: {f["id"] for f in account.forms()}),
    "images": ("id", lambda account: {i["id"] for i in account.images()}),
}


@pytest.fixture(scope="module")
def further_streams_loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Any, dlt.Pipeline]]:
    """The account and one pipeline that loaded every further stream from it (one run for all tables)."""
    work_dir = tmp_path_factory.mktemp("further_streams")
    with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emu:
        pipeline = dlt.pipeline(
            pipeline_name="klaviyo_further_streams",
            pipelines_dir=str(work_dir / "pipelines"),
            destination=dlt.destinations.duckdb(str(work_dir / "klaviyo.duckdb")),
            dataset_name="klaviyo_data",
        )
        pipeline.run(source_for(emu).with_resources(*MORE))
        yield emu.account, pipeline


def test_every_further_stream_has_an_expectation() -> None:
    assert set(EXPECTED_KEYS) == set(MORE)


@pytest.mark.parametrize("table", MORE)
def test_each_further_stream_equals_the_account(
    further_streams_loaded: Tuple[Any, dlt.Pipeline], table: str
) -> None:
    account, pipeline = further_streams_loaded
    key, expected = EXPECTED_KEYS[table]
    wanted = expected(account)
    assert wanted, f"the seeded account must have {table}"
    keys = column_values(pipeline, table, key)
    assert len(keys) == len(set(keys)), f"{table}: a row is loaded twice"
    assert set(keys) == wanted


def test_child_tables_carry_their_parents_id(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("flow_actions", "flow_messages", "campaign_messages"))
    flow = account.flows()[0]
    with pipeline.sql_client() as client:
        actions = {
            r[0] for r in client.execute_sql("select id from flow_actions where flow_id = %s", flow["id"])
        }
        orphans = client.execute_sql("select count(*) from campaign_messages where campaign_id is null")[0][0]
    assert actions == {a["id"] for a in account.flow_actions(flow["id"])}
    assert orphans == 0


def test_events_carry_metric_name_and_integration(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("events"))
    decoy = account.metric_id("Clicked Email", integration_key="api")
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select distinct metric_name, metric_integration from events where metric_id = %s", decoy
        )
    assert rows == [("Clicked Email", "api")]


def test_flow_fan_out_walks_only_flows_updated_since_the_last_run(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("flows", "flow_actions", "flow_messages"))
    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("flows", "flow_actions", "flow_messages"))
    walked = {e.path for e in emulator.request_log if "/flow-actions" in e.path}
    assert walked == set(), "no flow changed, so no flow's actions are read again"
    flow = account.flows()[0]
    with account.lock:
        account.flows_by_id[flow["id"]]["updated"] = account.now + timedelta(hours=1)
    account.bump()  # edited in place: tell the emulator its paging order may have changed
    emulator.clear_log()
    pipeline.run(source_for(emulator).with_resources("flows", "flow_actions", "flow_messages"))
    walked = {e.path for e in emulator.request_log if e.path.rstrip("/").endswith("/flow-actions")}
    assert {path.rstrip("/") for path in walked} == {f"/api/flows/{flow['id']}/flow-actions"}


def test_events_carry_the_campaign_or_flow_they_are_attributed_to(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("events", "click"))
    attributed = {}
    for event in account.all_events():
        found = account.attributions(event["id"])
        if found:
            attributed[event["id"]] = found[0]
    assert attributed, "the seeded account must have attributed events"
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select id, attributed_event_id, coalesce(campaign_message_id, flow_message_id) from events"
            " where attributed_event_id is not null"
        )
        click_columns = {r[0] for r in client.execute_sql("describe click")}
    assert {r[0] for r in rows} == set(attributed)
    for event_id, attributed_event, message in rows:
        expected = attributed[event_id]
        assert attributed_event == expected["attributed_event_id"]
        assert message == (expected["campaign_message_id"] or expected["flow_message_id"])
    assert "attribution_ids" not in click_columns and not any("attribution" in c for c in click_columns)


REPORT_WINDOW = {"start_date": "2026-05-01T00:00:00+00:00", "end_date": "2026-10-31T00:00:00+00:00"}


def test_campaign_and_flow_values_reports_equal_klaviyos_figures(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    from klaviyo.settings import REPORT_STATISTICS

    account = emulator.account
    metric = account.metric_id("Placed Order", integration_key="shopify")
    timeframe = {"start": "2026-05-01T00:00:00+00:00", "end": "2026-10-31T00:00:00+00:00"}
    source = source_for(emulator, **REPORT_WINDOW)
    pipeline.run(source.with_resources("campaign_values_report", "flow_values_report"))
    for table, truth, ids in (
        ("campaign_values_report", account.campaign_values, ("campaign_id", "campaign_message_id")),
        ("flow_values_report", account.flow_values, ("flow_id", "flow_message_id")),
    ):
        expected = truth(list(REPORT_STATISTICS), timeframe, metric)["results"]
        assert expected, f"the seeded account must have {table} activity"
        with pipeline.sql_client() as client:
            loaded = {
                (r[0], r[1], r[2]): (r[3], r[4])
                for r in client.execute_sql(
                    f"select {ids[0]}, {ids[1]}, send_channel, opens, conversions from {table}"
                )
            }
        assert loaded == {
            (e["groupings"][ids[0]], e["groupings"][ids[1]], e["groupings"]["send_channel"]): (
                e["statistics"]["opens"],
                e["statistics"]["conversions"],
            )
            for e in expected
        }


def test_flow_series_report_equals_klaviyos_daily_figures(
    scaled_rate_limits: Any, pipeline: dlt.Pipeline
) -> None:
    from klaviyo.settings import REPORT_STATISTICS

    emulator = scaled_rate_limits
    account = emulator.account
    pipeline.run(source_for(emulator, **REPORT_WINDOW).with_resources("flow_series_report"))
    report_requests = [e for e in emulator.request_log if "flow-series-reports" in e.path]
    assert [e.status for e in report_requests] == [200] * 4  # 183 days in windows of at most 60

    # Klaviyo's figures per day, asked for in windows of 30 days (a daily series allows 60 at most).
    # A window's end is rounded up to the end of its hour, so its last day is partial: the next
    # window's figures for that day replace them. A message without activity in a window has no row.
    metric = account.metric_id("Placed Order", integration_key="shopify")
    start, end = (datetime.fromisoformat(REPORT_WINDOW[k]) for k in ("start_date", "end_date"))
    expected = {}
    while start < end:
        window = {"start": start.isoformat(), "end": min(start + timedelta(days=30), end).isoformat()}
        grouping = ["flow_id", "flow_message_id", "send_channel"]
        truth = account.flow_series(list(REPORT_STATISTICS), window, metric, "daily", grouping)
        for result in truth["results"]:
            message, figures = result["groupings"], result["statistics"]
            for index, day in enumerate(truth["date_times"]):
                key = (datetime.fromisoformat(day), message["flow_message_id"], message["send_channel"])
                expected[key] = (figures["opens"][index], figures["conversion_value"][index])
        start += timedelta(days=30)
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select date, flow_message_id, send_channel, opens, conversion_value from flow_series_report"
        )
    loaded = {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}
    assert len(rows) == len(loaded)  # one row per day, message and channel
    active = {key: figures for key, figures in expected.items() if any(figures)}
    assert active, "the seeded account must have flow activity"
    assert {key: figures for key, figures in loaded.items() if any(figures)} == active


def test_a_spent_daily_report_budget_skips_the_report_and_loads_the_rest(
    emulator: Any, pipeline: dlt.Pipeline, caplog: Any
) -> None:
    emulator.fault_hook = lambda info: (
        Fault(status=429, retry_after=80000) if "reports" in info.path else None
    )
    with caplog.at_level("WARNING"):
        pipeline.run(source_for(emulator).with_resources("campaign_values_report", "metrics"))
    counts = table_counts(pipeline)
    assert counts["campaign_values_report"] == 0 and counts["metrics"] == len(emulator.account.metrics)
    assert any("budget" in r.getMessage() for r in caplog.records)


def test_incremental_membership_adds_joins_and_marks_who_left(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    list_id = max(account.list_ids(), key=lambda i: len(account.list_members(i)))
    source = lambda: source_for(emulator, removed_members="mark").with_resources("list_members")  # noqa: E731
    pipeline.run(source())
    first = table_counts(pipeline)["list_members"]
    assert first == sum(len(account.list_members(i)) for i in account.list_ids())

    leaver = sorted(account.list_members(list_id))[0]
    small = min(
        (i for i in account.list_ids() if account.list_members(i)), key=lambda i: len(account.list_members(i))
    )
    joiner = sorted(account.profile_ids() - set(account.list_members(small)))[0]
    account.remove_list_member(list_id, leaver)
    account.add_list_member(small, joiner, joined_at=account.now + timedelta(hours=1))
    emulator.clear_log()
    pipeline.run(source())

    with pipeline.sql_client() as client:
        removed = client.execute_sql(
            "select id, email, removed_at from list_members where list_id = %s and removed_at is not null",
            list_id,
        )
        current = {
            r[0]
            for r in client.execute_sql(
                "select id from list_members where list_id = %s and removed_at is null", list_id
            )
        }
    assert [r[0] for r in removed] == [leaver] and removed[0][1] == account.profile(leaver)["email"]
    assert current == set(account.list_members(list_id))
    assert joiner in set(
        column_values(pipeline, f"list_members where removed_at is null and list_id = '{small}'")
    )
    # the second run read only new joins in full (each list from its last join on, so one boundary
    # row per non-empty list comes again), and compared the rest through the ids-only endpoint
    full_reads = [e for e in emulator.request_log if e.operation_id == "get_profiles_for_list"]
    since_last_join = [
        e for e in full_reads if "greater-or-equal(joined_group_at," in e.query.get("filter", "")
    ]
    non_empty = [i for i in account.list_ids() if account.list_members(i)]
    assert len(since_last_join) == len(non_empty)  # the empty list has no last join: it is read whole
    assert sum(e.records for e in full_reads) == len(non_empty) + 1  # + the joiner
    assert {e.operation_id for e in emulator.request_log} >= {"get_profile_ids_for_list"}
