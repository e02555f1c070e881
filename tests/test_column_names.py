"""Column names say what they hold: `timestamp` is Klaviyo's epoch seconds everywhere it appears."""

from typing import Any, Dict

import dlt

from tests.helpers import source_for


def column_types(pipeline: dlt.Pipeline, table: str) -> Dict[str, str]:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = %s and table_name = %s",
            pipeline.dataset_name,
            table,
        )
    return {name: data_type for name, data_type in rows}


def test_global_exclusions_say_when_as_suppressed_at_and_events_keep_an_epoch_timestamp(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator).with_resources("global_exclusions", "click"))
    exclusions = column_types(pipeline, "global_exclusions")
    assert exclusions["suppressed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert "timestamp" not in exclusions
    assert column_types(pipeline, "click")["timestamp"] == "BIGINT"
    with pipeline.sql_client() as client:
        nulls = client.execute_sql("select count(*) from global_exclusions where suppressed_at is null")[0][0]
        rows = client.execute_sql("select count(*) from global_exclusions")[0][0]
    assert rows > 0 and nulls == 0
