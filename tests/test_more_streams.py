"""Streams beyond the original connector: each loads from the emulator with exact counts and unique keys."""

from datetime import timedelta
from typing import Any

import dlt

from klaviyo_emulator import Fault
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


def test_each_further_stream_equals_the_account(emulator: Any, pipeline: dlt.Pipeline) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources(*MORE))
    counts = table_counts(pipeline)
    flows = account.flows()
    actions = [a for f in flows for a in account.flow_actions(f["id"])]
    messages = [m for a in actions for m in account.flow_messages(a["id"])]
    assert counts["events"] == len(account.all_events())
    assert counts["segments"] == len(account.segment_ids())
    assert counts["segment_members"] == sum(len(account.segment_members(s)) for s in account.segment_ids())
    assert counts["flows"] == len(flows)
    assert set(column_values(pipeline, "flow_actions")) == {a["id"] for a in actions}
    assert set(column_values(pipeline, "flow_messages")) == {m["id"] for m in messages}
    assert set(column_values(pipeline, "campaign_messages")) == set(account.campaign_messages_by_id)
    assert counts["templates"] == len(account.templates_by_id)
    assert counts["tags"] == len(account.tags_by_id)
    assert counts["tag_groups"] == len(account.tag_groups_by_id)
    assert set(column_values(pipeline, "catalog_items")) == {i["id"] for i in account.catalog_items()}
    assert set(column_values(pipeline, "catalog_variants")) == {v["id"] for v in account.catalog_variants()}
    assert set(column_values(pipeline, "catalog_categories")) == {
        c["id"] for c in account.catalog_categories()
    }
    assert set(column_values(pipeline, "coupons")) == {c["id"] for c in account.coupons()}
    assert set(column_values(pipeline, "coupon_codes")) == {c["id"] for c in account.coupon_codes()}
    assert set(column_values(pipeline, "forms")) == {f["id"] for f in account.forms()}
    assert set(column_values(pipeline, "images")) == {i["id"] for i in account.images()}
    for table in MORE:
        key = "segment_id || '/' || id" if table == "segment_members" else "id"
        values = column_values(pipeline, table, key)
        assert len(values) == len(set(values)), table


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


def test_flow_series_report_has_one_row_per_day_and_message(emulator: Any, pipeline: dlt.Pipeline) -> None:
    pipeline.run(source_for(emulator, **REPORT_WINDOW).with_resources("flow_series_report"))
    report_requests = [e for e in emulator.request_log if "flow-series-reports" in e.path]
    assert len(report_requests) == 4  # 183 days in windows of at most 60
    keys = column_values(
        pipeline, "flow_series_report", "cast(date as varchar) || flow_message_id || send_channel"
    )
    assert keys and len(keys) == len(set(keys))


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
