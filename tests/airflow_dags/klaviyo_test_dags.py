"""The example's DAGs (examples/airflow_dag.py) pointed at emulated accounts, for tests/test_airflow_dag.py.

Airflow 3 runs `dag.test()` only for DAGs that it parsed from its DAGs folder, which is this folder
in that test; the accounts' base URLs and the DuckDB file come from its environment.
"""

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import airflow_dag as example  # noqa: E402

BASE_URLS = json.loads(os.environ.get("KLAVIYO_TEST_BASE_URLS", "{}"))
DESTINATION = dlt.destinations.duckdb(os.environ.get("KLAVIYO_TEST_DATABASE", "klaviyo.duckdb"))
HISTORY_START, BACKFILL_END, RANGES = "2023-11-01", "2026-06-01", 4  # the accounts span 2023-11 .. 2026-11


def source_for(account: str, **options: Any) -> Any:
    """The example's own source factory (key from dlt's secrets), pointed at the account's emulator."""
    return example.account_source(account, base_url=BASE_URLS[account], **options)


backfill = example.klaviyo_dag(
    "test_klaviyo_backfill",
    list(BASE_URLS),
    DESTINATION,
    incremental_start=BACKFILL_END,
    backfill_ranges=example.time_ranges(HISTORY_START, BACKFILL_END, RANGES),
    schedule=None,
    source_for=source_for,
    retry_delay=timedelta(seconds=1),
)
daily = example.klaviyo_dag(
    "test_klaviyo_daily", list(BASE_URLS), DESTINATION, incremental_start=BACKFILL_END, source_for=source_for
)
