"""Airflow DAGs that load several Klaviyo accounts: a one-off backfill in time ranges, then daily runs.

Copy this file into your DAGs folder next to the `klaviyo` package (from `dlt init klaviyo <destination>`).
Written for Airflow 3 (tested on 3.3; on Airflow 2 import `DAG` and `Variable` from `airflow.models`).

Settings are Airflow Variables (set in the UI, or as `AIRFLOW_VAR_<NAME>` environment variables):
    klaviyo_accounts         comma-separated account names, e.g. "brand_a,brand_b"
    klaviyo_destination      a dlt destination name (default "duckdb")
    klaviyo_backfill_start   the oldest data to load, e.g. the account's creation date "2021-01-01"
    klaviyo_backfill_end     where the backfill stops and the incremental runs take over, e.g. "2026-12-01"
    klaviyo_backfill_ranges  how many time ranges the backfill is split into (default 8)

Secrets go through dlt: each account's private key (`pk_...`) in SOURCES__KLAVIYO__ACCOUNTS__BRAND_A
(or in the Airflow Variable `dlt_secrets_toml` holding a secrets.toml with `[sources.klaviyo.accounts]`),
the destination's credentials likewise (DESTINATION__<NAME>__CREDENTIALS). For DuckDB set
DESTINATION__DUCKDB__CREDENTIALS to a file path (each task runs in a temporary folder of its own), and
run one task at a time: a DuckDB file takes one writer (see README.md, "Scheduling"). Set
PROVIDERS__AIRFLOW_SECRETS__ONLY_TOML_FRAGMENTS=true too: this file then parses in about half the time.

Two DAGs come out, each with a task group per account:
- `klaviyo_backfill` (trigger it once, by hand): the tables read by time are loaded in
  `klaviyo_backfill_ranges` independent tasks, one per time range (start_date/end_date; they merge on
  the primary key, so a retried or repeated range duplicates nothing and they may run in any order),
  then the incremental tasks load from `klaviyo_backfill_end` on and save the incremental state.
- `klaviyo_daily`: the same incremental tasks each day, continuing from that state (unpause it once
  the backfill has succeeded: both write that state).
The incremental tasks decompose the source ("parallel-isolated"): event tables, list members and the
slow fan-outs run as separate tasks that retry on their own.
"""

from datetime import timedelta
from typing import Any, Callable, List, Optional, Sequence, Tuple

import dlt
import pendulum
from airflow.sdk import DAG, TaskGroup, Variable
from dlt.extract import DltSource
from dlt.helpers.airflow_helper import PipelineTasksGroup

# read whole on every run, so a backfill range has nothing to add to them
SNAPSHOT_TABLES = ("global_exclusions", "list_members", "metrics")

SourceFactory = Callable[..., DltSource]


def account_source(account: str, **options: Any) -> DltSource:
    """The account's source, its key from dlt's secrets (env or the `dlt_secrets_toml` Variable)."""
    from klaviyo import klaviyo_source

    return klaviyo_source(api_key=dlt.secrets[f"sources.klaviyo.accounts.{account}"], **options)


def time_ranges(start: str, end: str, parts: int) -> List[Tuple[Optional[str], str]]:
    """`parts` equal ranges from `start` to `end`; the first also takes everything before `start`."""
    first, last = pendulum.parse(start), pendulum.parse(end)
    step = (last - first) / parts
    bounds = [(first + step * i).replace(microsecond=0).isoformat() for i in range(1, parts)]
    return list(zip([None, *bounds], [*bounds, last.isoformat()], strict=True))


def klaviyo_dag(
    dag_id: str,
    accounts: Sequence[str],
    destination: Any,
    incremental_start: Optional[str] = None,
    backfill_ranges: Sequence[Tuple[Optional[str], str]] = (),
    schedule: Optional[str] = "@daily",
    source_for: SourceFactory = account_source,
    retries: int = 2,
    retry_delay: timedelta = timedelta(minutes=5),
) -> DAG:
    """A DAG with one task group per account: the backfill ranges side by side (if any), then the
    incremental tasks, which start at `incremental_start` when the account has no state yet."""
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={
            "retries": retries,
            "retry_delay": retry_delay,
            "execution_timeout": timedelta(hours=6),
        },
    ) as dag:
        for account in accounts:
            with TaskGroup(f"klaviyo_{account}"):
                dataset = f"klaviyo_data_{account}"
                if backfill_ranges:
                    ranges = PipelineTasksGroup("backfill", wipe_local_data=True)
                for number, (start, end) in enumerate(backfill_ranges, start=1):
                    # a pipeline (and task) per range: a run with an end date keeps no state to share
                    pipeline = dlt.pipeline(
                        f"klaviyo_{account}_backfill_{number}", dataset_name=dataset, destination=destination
                    )
                    ranges.add_run(pipeline, timed_tables(source_for, account, start, end), decompose="none")
                # a PipelineTasksGroup sets the folder of the pipelines made after it: make it first
                incremental = PipelineTasksGroup("incremental", wipe_local_data=True)
                pipeline = dlt.pipeline(f"klaviyo_{account}", dataset_name=dataset, destination=destination)
                incremental.add_run(
                    pipeline,
                    source_for(account, start_date=incremental_start),
                    decompose="parallel-isolated",
                    # after a backfill only once every range is in (or the state would skip a missing
                    # range); day to day a table that failed does not hold back the others
                    trigger_rule="all_success" if backfill_ranges else "all_done",
                )
                if backfill_ranges:
                    ranges >> incremental
    return dag


def timed_tables(
    source_for: SourceFactory, account: str, start: Optional[str], end: str
) -> Callable[[], DltSource]:
    """The tables read by time, bounded to one range; built when the task runs."""

    def source() -> DltSource:
        full = source_for(account, start_date=start, end_date=end)
        return full.with_resources(*[name for name in full.selected_resources if name not in SNAPSHOT_TABLES])

    return source


def setting(name: str, default: str = "") -> str:
    return str(Variable.get(name, default=default))


def destination_from_settings() -> str:
    name = setting("klaviyo_destination", "duckdb")
    if name == "duckdb" and not dlt.secrets.get("destination.duckdb.credentials"):
        # without a path each task would write its own file in its own temporary folder
        raise ValueError(
            "klaviyo_destination is duckdb but DESTINATION__DUCKDB__CREDENTIALS is not set: set it to the"
            " path of the DuckDB file that every task writes, e.g. /data/klaviyo.duckdb."
        )
    return name


ACCOUNTS = [name.strip() for name in setting("klaviyo_accounts").split(",") if name.strip()]
DESTINATION = destination_from_settings() if ACCOUNTS else "duckdb"
BACKFILL_END = setting("klaviyo_backfill_end") or None
if BACKFILL_END:
    klaviyo_dag(
        "klaviyo_backfill",
        ACCOUNTS,
        DESTINATION,
        incremental_start=BACKFILL_END,
        backfill_ranges=time_ranges(
            setting("klaviyo_backfill_start", "2012-01-01"),
            BACKFILL_END,
            int(setting("klaviyo_backfill_ranges", "8")),
        ),
        schedule=None,
    )
klaviyo_dag("klaviyo_daily", ACCOUNTS, DESTINATION, incremental_start=BACKFILL_END)
