"""Streams beyond the original connector: each loads from the emulator with exact counts and unique keys."""

from datetime import timedelta
from typing import Any

import dlt

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
