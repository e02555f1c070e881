"""Assertion helpers shared by the tests: one per idea."""

from typing import Any, Dict

import dlt


def source_for(emu: Any, **options: Any) -> Any:
    from klaviyo import klaviyo_source

    return klaviyo_source(api_key=emu.api_key, base_url=emu.base_url, **options)


def table_counts(pipeline: dlt.Pipeline) -> Dict[str, int]:
    """Rows per loaded table (dlt's own tables left out)."""
    with pipeline.sql_client() as client:
        tables = [
            row[0]
            for row in client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s",
                pipeline.dataset_name,
            )
        ]
        return {
            name: client.execute_sql(f"select count(*) from {name}")[0][0]
            for name in tables
            if not name.startswith("_dlt")
        }


def column_values(pipeline: dlt.Pipeline, table: str, column: str = "id") -> list:
    with pipeline.sql_client() as client:
        return [row[0] for row in client.execute_sql(f"select {column} from {table}")]


def expected_metric_events(account: Any, names: tuple) -> set:
    """Ids of the events of Klaviyo's own metric(s) of these names: what a metric table should hold."""
    ids = set()
    for name in names:
        metric_id = account.metric_id(name, integration_key="klaviyo")
        if metric_id:
            ids |= {event["id"] for event in account.events_for_metric(metric_id)}
    return ids
