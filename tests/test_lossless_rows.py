"""Customer-defined properties reach every destination exactly as Klaviyo sent them.

The emulator's profiles and events are given real-shaped bags (keys with `$`, spaces, case variants,
non-Latin scripts, values whose type differs between rows, nested lists, datetimes written in
several ways); after a bare `pipeline.run` every value is read back from DuckDB, and from the
filesystem destination's parquet and jsonl files.
"""

import gzip
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt
import pyarrow.parquet as pq
import pytest
from dlt.common import json

from tests.helpers import source_for

PROPERTIES_A = {
    "First Name": "James",
    "first_name": "jim",
    "FIRST_NAME": "JIM",
    "会員ランク": "ゴールド",
    "誕生日": "1990-04-01",
    "$source": "pos",
    "$consent": ["email", "sms"],
    "Favourite Colour ": "blue",
    "last order at": "2024-05-01 10:00:00",
    "Signed Up": "2024-05-01T10:00:00.123456+00:00",
    "mixed": 3,
    "nested": [1, {"a": [2, 3.5, None]}, "x"],
    "empty": {},
    "nothing": None,
    "flag": True,
    "big": 2**53 + 1,
}
PROPERTIES_B = {"First Name": "Ana", "mixed": "three", "会員ランク": 2, "flag": "yes"}
EVENT_PROPERTIES_A = {
    "$value": 12,
    "$extra": {"Items": [{"SKU": "A-1", "数量": 2}, {"SKU": "B 2", "数量": 1.5}]},
    "Item Names": ["Widget", "ウィジェット"],
    "Order ID": "1001",
    "order id": 1001,
    "Shipped At": "2024-05-02 08:30:00.5",
}
EVENT_PROPERTIES_B = {"$value": "12.50", "Order ID": 1002}
SIGNED_UP = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)


def seed_bags(account: Any) -> Dict[str, Any]:
    """Puts the bags on two profiles and two new events; returns the ids."""
    profile_a, profile_b = sorted(account.profile_ids())[:2]
    events = account.add_events(2, "Placed Order", integration_key="shopify")
    with account.lock:
        account.profiles_by_id[profile_a]["properties"] = PROPERTIES_A
        account.profiles_by_id[profile_a]["created"] = SIGNED_UP  # a fractional-second defined time
        account.profiles_by_id[profile_b]["properties"] = PROPERTIES_B
        account.events_by_id[events[0]]["event_properties"] = EVENT_PROPERTIES_A
        account.events_by_id[events[1]]["event_properties"] = EVENT_PROPERTIES_B
    account.bump()
    return {"profiles": (profile_a, profile_b), "events": tuple(events)}


def filesystem_rows(bucket: Path, dataset: str, table: str) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for path in sorted((bucket / dataset / table).iterdir()):
        if path.name.endswith(".parquet"):
            rows.extend(pq.read_table(path).to_pylist())
        elif ".jsonl" in path.name:
            opener: Any = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as lines:
                rows.extend(json.loads(line) for line in lines if line.strip())
    return rows


def loaded_rows(destination: str, tmp_path: Path, emulator: Any) -> Dict[str, Dict[str, Any]]:
    """Runs profiles and events into the destination; returns every loaded row by table and id."""
    if destination == "duckdb":
        target: Any = dlt.destinations.duckdb(str(tmp_path / "lossless.duckdb"))
        file_format: Optional[str] = None
    else:
        target = dlt.destinations.filesystem(str(tmp_path / "files"))
        file_format = destination
    pipeline = dlt.pipeline(
        pipeline_name="lossless", pipelines_dir=str(tmp_path / "p"), destination=target, dataset_name="k"
    )
    source = source_for(emulator).with_resources("profiles", "events")
    if file_format:
        pipeline.run(source, loader_file_format=file_format)  # type: ignore[arg-type]
    else:
        pipeline.run(source)  # the default path: no loader_file_format
    tables: Dict[str, Dict[str, Any]] = {}
    for table in ("profiles", "events"):
        if destination == "duckdb":
            with pipeline.sql_client() as client, client.execute_query(f"select * from {table}") as cursor:
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        else:
            rows = filesystem_rows(tmp_path / "files", "k", table)
        tables[table] = {row["id"]: row for row in rows}
    return tables


def bag(value: Any) -> Any:
    """A JSON column as read back: DuckDB and parquet give JSON text, jsonl the same text."""
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("destination", ["duckdb", "parquet", "jsonl"])
def test_every_property_key_and_value_is_loaded_as_klaviyo_sent_it(
    destination: str, emulator: Any, tmp_path: Path
) -> None:
    ids = seed_bags(emulator.account)
    tables = loaded_rows(destination, tmp_path, emulator)
    profile_a, profile_b = ids["profiles"]
    event_a, event_b = ids["events"]
    assert bag(tables["profiles"][profile_a]["properties"]) == PROPERTIES_A
    assert bag(tables["profiles"][profile_b]["properties"]) == PROPERTIES_B
    assert bag(tables["events"][event_a]["event_properties"]) == EVENT_PROPERTIES_A
    assert bag(tables["events"][event_b]["event_properties"]) == EVENT_PROPERTIES_B


@pytest.mark.parametrize("destination", ["duckdb", "parquet", "jsonl"])
def test_every_profile_and_event_of_the_account_is_loaded_with_its_bag(
    destination: str, emulator: Any, tmp_path: Path
) -> None:
    account = emulator.account
    seed_bags(account)
    tables = loaded_rows(destination, tmp_path, emulator)
    expected_profiles = {pid: account.profile(pid)["properties"] for pid in account.profile_ids()}
    assert {pid: bag(row["properties"]) for pid, row in tables["profiles"].items()} == expected_profiles
    expected_events = {e["id"]: e["event_properties"] for e in account.all_events()}
    loaded_events = {eid: bag(row["event_properties"]) for eid, row in tables["events"].items()}
    assert loaded_events == expected_events


def test_a_fractional_second_time_keeps_its_microseconds(emulator: Any, tmp_path: Path) -> None:
    ids = seed_bags(emulator.account)
    tables = loaded_rows("duckdb", tmp_path, emulator)
    assert tables["profiles"][ids["profiles"][0]]["created"] == SIGNED_UP


def test_a_property_is_queried_by_its_exact_key_in_duckdb(emulator: Any, pipeline: dlt.Pipeline) -> None:
    ids = seed_bags(emulator.account)
    pipeline.run(source_for(emulator).with_resources("profiles"))
    with pipeline.sql_client() as client:
        rank, first_name, name_with_space = client.execute_sql(
            """select properties->>'$."会員ランク"', properties->>'$.first_name',
                      properties->>'$."First Name"' from profiles where id = %s""",
            ids["profiles"][0],
        )[0]
        types = dict(
            client.execute_sql(
                "select column_name, data_type from information_schema.columns where table_name = 'profiles'"
            )
        )
    assert (rank, first_name, name_with_space) == ("ゴールド", "jim", "James")
    assert types["properties"] == "JSON"


def test_tables_have_no_nested_child_tables(emulator: Any, pipeline: dlt.Pipeline) -> None:
    seed_bags(emulator.account)
    pipeline.run(source_for(emulator).with_resources("profiles", "events", "list_members", "campaigns"))
    tables = [t for t in pipeline.default_schema.data_table_names() if not t.startswith("_dlt")]
    assert sorted(tables) == ["campaigns", "events", "list_members", "profiles"]


def test_a_value_of_another_type_than_the_spec_says_is_kept_in_extra_attributes(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    profile = sorted(account.profile_ids())[0]
    with account.lock:
        account.profiles_by_id[profile]["location"] = dict(account.profile(profile)["location"], zip=2139)
        account.profiles_by_id[profile]["location"]["floor"] = "3rd"
    account.bump()
    pipeline.run(source_for(emulator).with_resources("profiles"))
    with pipeline.sql_client() as client:
        zip_code, extra = client.execute_sql(
            "select location__zip, extra_attributes from profiles where id = %s", profile
        )[0]
        others = client.execute_sql("select count(*) from profiles where extra_attributes is not null")[0][0]
    assert zip_code is None
    assert json.loads(extra) == {"location": {"zip": 2139, "floor": "3rd"}}
    assert others == 1


def test_the_readmes_duckdb_queries_find_the_properties(emulator: Any, pipeline: dlt.Pipeline) -> None:
    ids = seed_bags(emulator.account)
    pipeline.run(source_for(emulator).with_resources("profiles", "events"))
    block = (Path(__file__).resolve().parent.parent / "README.md").read_text().split("```sql\n")[1]
    profiles_query, events_query = [s for s in block.split("```")[0].split(";") if s.strip()]
    with pipeline.sql_client() as client:
        by_id = {row[0]: row[1:] for row in client.execute_sql(profiles_query)}
        order_values = {row[0] for row in client.execute_sql(events_query)}
    assert by_id[ids["profiles"][0]] == ("James", "jim", "ゴールド")
    assert "12" in order_values and "12.50" in order_values
