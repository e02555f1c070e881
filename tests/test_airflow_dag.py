"""The example Airflow DAGs run for real (`dag.test()`) against two emulated Klaviyo accounts.

Airflow is not in the project's dev requirements: CI installs requirements-airflow.txt into a venv of
its own and runs this file there; elsewhere it skips. `dag.test()` runs the tasks one after another in
this process (Airflow's executors run the same independent tasks side by side). Run this file on its
own, as .ci/run does: Airflow reads AIRFLOW_HOME once, when it is first imported.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional

import duckdb
import pytest

from klaviyo.settings import METRIC_TABLES
from klaviyo_emulator import AccountSpec, EmulatorConfig, Fault, RequestInfo, run_emulator
from tests.helpers import expected_metric_events

if importlib.util.find_spec("airflow") is None:
    pytest.skip(
        "Airflow is not installed here: .ci/run installs requirements-airflow.txt and runs this file",
        allow_module_level=True,
    )

# dlt's Airflow secrets provider still reads Variables through Airflow 2's API
pytestmark = pytest.mark.filterwarnings("ignore:Using Variable.get from `airflow.models`:DeprecationWarning")

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "tests" / "airflow_dags"  # klaviyo_test_dags.py: the example's DAGs on the emulators
ACCOUNTS = ("brand_a", "brand_b")
# the client's attempts per request (tests/conftest.py): this many 503s in a row fail the task
MAX_ATTEMPTS = int(os.environ["RUNTIME__REQUEST_MAX_ATTEMPTS"])


@pytest.fixture(scope="module")
def accounts() -> Iterator[Dict[str, Any]]:
    """Two accounts, each with its own key, as two Klaviyo accounts are."""
    configs = {
        "brand_a": EmulatorConfig(
            account=AccountSpec(seed=21, profiles=150, events=3000), api_key="pk_brand_a", rate_limit_scale=0
        ),
        "brand_b": EmulatorConfig(
            account=AccountSpec(seed=22, profiles=110, events=2400), api_key="pk_brand_b", rate_limit_scale=0
        ),
    }
    with run_emulator(configs["brand_a"]) as brand_a, run_emulator(configs["brand_b"]) as brand_b:
        yield {"brand_a": brand_a, "brand_b": brand_b}


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory, accounts: Dict[str, Any]) -> Iterator[Any]:
    """tests/airflow_dags/klaviyo_test_dags.py under a throwaway AIRFLOW_HOME with a fresh sqlite DB;
    the keys reach the DAGs as in production, through dlt's secrets."""
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_HOME", str(home))
        env.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
        env.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        # as README.md advises: dlt asks Airflow only for `dlt_secrets_toml`, not for every setting
        env.setenv("PROVIDERS__AIRFLOW_SECRETS__ONLY_TOML_FRAGMENTS", "true")
        env.setenv("KLAVIYO_TEST_BASE_URLS", json.dumps({name: e.base_url for name, e in accounts.items()}))
        env.setenv("KLAVIYO_TEST_DATABASE", str(home / "klaviyo.duckdb"))
        for name, emulator in accounts.items():
            env.setenv(f"SOURCES__KLAVIYO__ACCOUNTS__{name.upper()}", emulator.api_key)
        # PipelineTasksGroup points dlt's folders at its own through these: put them back afterwards
        for name in ("DLT_DATA_DIR", "DLT_LOCAL_DIR", "DLT_PROJECT_DIR"):
            env.setenv(name, "")
            env.delenv(name)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        yield SimpleNamespace(module=parse_dags(), database=home / "klaviyo.duckdb")


def parse_dags() -> ModuleType:
    """The DAG file parsed anew, as Airflow does for each task it runs (its pipelines are fresh)."""
    spec = importlib.util.spec_from_file_location("klaviyo_test_dags", DAGS_FOLDER / "klaviyo_test_dags.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def backfill(dags: Any, accounts: Dict[str, Any]) -> Any:
    """The backfill DAG run once, while brand_b's third range meets an outage that outlasts the
    client's retries on its first try (so Airflow's retry of that task is what gets the rows)."""
    ranges = dags.module.example.time_ranges(
        dags.module.HISTORY_START, dags.module.BACKFILL_END, dags.module.RANGES
    )
    outage = Outage(accounts["brand_b"], end_bound=ranges[2][1])
    accounts["brand_b"].fault_hook = outage
    try:
        run = dags.module.backfill.test()
    finally:
        accounts["brand_b"].fault_hook = None
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    return SimpleNamespace(
        run=run, tries=tries, ranges=ranges, database=dags.database, outage=outage, dag=dags.module.backfill
    )


def test_the_example_file_makes_its_dags_from_airflow_variables(
    dags: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_KLAVIYO_ACCOUNTS", "brand_a, brand_b")  # as Airflow Variables
    monkeypatch.setenv("AIRFLOW_VAR_KLAVIYO_BACKFILL_START", "2022-01-01")
    monkeypatch.setenv("AIRFLOW_VAR_KLAVIYO_BACKFILL_END", "2026-01-01")
    monkeypatch.setenv("AIRFLOW_VAR_KLAVIYO_BACKFILL_RANGES", "6")
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "klaviyo.duckdb"))
    bag = DagBag(dag_folder=str(REPO / "examples"))

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"klaviyo_backfill", "klaviyo_daily"}
    backfill, daily = bag.dags["klaviyo_backfill"], bag.dags["klaviyo_daily"]
    assert backfill.schedule is None and daily.schedule == "@daily"
    assert {task.task_id.split(".")[0] for task in backfill.tasks} == {"klaviyo_brand_a", "klaviyo_brand_b"}
    assert sum(task.task_id.startswith("klaviyo_brand_a.backfill.") for task in backfill.tasks) == 6
    assert not any(".backfill." in task.task_id for task in daily.tasks)
    assert sum(task.task_id.startswith("klaviyo_brand_a.incremental.") for task in daily.tasks) > 2


def test_the_example_file_names_the_missing_duckdb_path_instead_of_scattering_files(
    dags: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_KLAVIYO_ACCOUNTS", "brand_a")
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    bag = DagBag(dag_folder=str(REPO / "examples"))

    assert bag.dag_ids == []
    [error] = bag.import_errors.values()
    assert "DESTINATION__DUCKDB__CREDENTIALS is not set" in error


class Outage:
    """503 for brand_b's "Received Email" events up to `end_bound`, MAX_ATTEMPTS times, then healed."""

    def __init__(self, emulator: Any, end_bound: str) -> None:
        self.metric_id = emulator.account.metric_id("Received Email", integration_key="klaviyo")
        self.end_bound = end_bound
        self.served = 0
        self._lock = threading.Lock()

    def __call__(self, request: RequestInfo) -> Optional[Fault]:
        query = request.query.get("filter", "")
        if not (request.path.endswith("/events") and self.metric_id in query):
            return None
        if f"less-than(datetime,{self.end_bound})" not in query:
            return None
        with self._lock:
            if self.served >= MAX_ATTEMPTS:
                return None
            self.served += 1
        return Fault(status=503)


def rows(database: Path, account: str, table: str, column: str = "id") -> List[Any]:
    with duckdb.connect(str(database), read_only=True) as connection:
        query = f"select {column} from klaviyo_data_{account}.{table}"
        return [row[0] for row in connection.execute(query).fetchall()]


def assert_tables_equal_the_account(database: Path, name: str, account: Any) -> None:
    tables = {
        "profiles": account.profile_ids(),
        "lists": set(account.list_ids()),
        "campaigns": {campaign["id"] for campaign in account.campaigns()},
        "metrics": {metric["id"] for metric in account.metrics},
        "global_exclusions": set(account.suppressed_profiles()),
        **{table: expected_metric_events(account, names) for table, names in METRIC_TABLES.items()},
    }
    for table, expected in tables.items():
        loaded = rows(database, name, table)
        assert len(loaded) == len(set(loaded)), f"{name}.{table} has duplicate ids"
        assert set(loaded) == expected, f"{name}.{table}"
    members = rows(database, name, "list_members", "list_id || '/' || id")
    assert len(members) == len(set(members))
    assert set(members) == {f"{lid}/{pid}" for lid in account.list_ids() for pid in account.list_members(lid)}


def event_filters(emulator: Any) -> List[str]:
    return [e.query.get("filter", "") for e in emulator.request_log if e.path.endswith("/events")]


def test_the_backfill_dag_loads_both_accounts_equal_to_the_accounts(
    backfill: Any, accounts: Dict[str, Any]
) -> None:
    assert backfill.run.state == "success", backfill.tries
    for name, emulator in accounts.items():
        assert_tables_equal_the_account(backfill.database, name, emulator.account)
    assert sum(len(rows(backfill.database, name, "receive")) for name in ACCOUNTS) > 1000


def test_the_backfill_is_four_independent_range_tasks_per_account_before_the_incremental_tasks(
    backfill: Any,
) -> None:
    for name in ACCOUNTS:
        range_tasks = [t for t in backfill.dag.tasks if t.task_id.startswith(f"klaviyo_{name}.backfill.")]
        assert len(range_tasks) == 4
        ids = {t.task_id for t in range_tasks}
        assert all(not (t.upstream_task_ids | t.downstream_task_ids) & ids for t in range_tasks)
        incremental = [t for t in backfill.dag.tasks if t.task_id.startswith(f"klaviyo_{name}.incremental.")]
        assert len(incremental) > 2  # the source decomposed, as the daily DAG runs it
        assert all(ids <= t.get_flat_relative_ids(upstream=True) for t in incremental)
        assert all(backfill.tries[t.task_id][0] == "success" for t in range_tasks + incremental)


def test_the_accounts_load_in_task_groups_that_do_not_wait_for_each_other(dags: Any) -> None:
    for dag in (dags.module.backfill, dags.module.daily):
        brand_a = {t.task_id for t in dag.tasks if t.task_id.startswith("klaviyo_brand_a.")}
        brand_b = {t.task_id for t in dag.tasks if t.task_id.startswith("klaviyo_brand_b.")}
        assert brand_a and brand_b and len(brand_a) + len(brand_b) == len(dag.tasks)
        for task_id in brand_a:
            assert not dag.task_dict[task_id].get_flat_relative_ids(upstream=True) & brand_b
            assert not dag.task_dict[task_id].get_flat_relative_ids(upstream=False) & brand_b


def test_the_range_tasks_read_their_ranges_and_the_incremental_tasks_start_where_they_end(
    backfill: Any, accounts: Dict[str, Any]
) -> None:
    filters = event_filters(accounts["brand_a"])
    for start, end in backfill.ranges:
        assert any(f"less-than(datetime,{end})" in f for f in filters), end
        if start:
            assert any(f"greater-or-equal(datetime,{start})" in f for f in filters), start
    backfill_end = backfill.ranges[-1][1]
    from_backfill_end = [f for f in filters if f"greater-or-equal(datetime,{backfill_end})" in f]
    assert from_backfill_end and any("less-than" not in f for f in from_backfill_end)


def test_a_range_task_failed_by_an_outage_is_retried_and_nothing_is_lost_or_duplicated(
    backfill: Any, accounts: Dict[str, Any]
) -> None:
    assert backfill.outage.served == MAX_ATTEMPTS  # the outage outlasted the client's own retries
    assert backfill.tries["klaviyo_brand_b.backfill.klaviyo_brand_b_backfill_3"] == ("success", 2)
    assert all(tries <= 1 for task, (_, tries) in backfill.tries.items() if not task.endswith("_backfill_3"))
    received = rows(backfill.database, "brand_b", "receive")
    assert len(received) == len(set(received))
    assert set(received) == expected_metric_events(accounts["brand_b"].account, METRIC_TABLES["receive"])


def test_a_range_loaded_again_duplicates_nothing(backfill: Any, dags: Any, accounts: Dict[str, Any]) -> None:
    rerun = "klaviyo_brand_a.backfill.klaviyo_brand_a_backfill_2"
    accounts["brand_a"].clear_log()
    backfill_dag = parse_dags().backfill
    run = backfill_dag.test(mark_success_pattern=rf"(?!{re.escape(rerun)}$).*")  # only that task runs

    assert run.state == "success"
    assert any(
        f"less-than(datetime,{backfill.ranges[1][1]})" in f for f in event_filters(accounts["brand_a"])
    )
    assert_tables_equal_the_account(backfill.database, "brand_a", accounts["brand_a"].account)


def lower_datetime_bounds(filters: List[str]) -> List[str]:
    return [m for f in filters for m in re.findall(r"greater-(?:or-equal|than)\(datetime,([^)]+)\)", f)]


def test_the_daily_dag_continues_from_where_the_backfill_left_off(
    backfill: Any, dags: Any, accounts: Dict[str, Any]
) -> None:
    account = accounts["brand_a"].account
    new_clicks = account.add_events(
        7, "Clicked Email", start=account.now, end=account.now + timedelta(hours=6)
    )
    for emulator in accounts.values():
        emulator.clear_log()
    run = dags.module.daily.test()
    assert run.state == "success"
    assert set(new_clicks) <= set(rows(backfill.database, "brand_a", "click"))
    backfill_end = backfill.ranges[-1][1]
    for name, emulator in accounts.items():
        assert_tables_equal_the_account(backfill.database, name, emulator.account)
        # every event read started from the saved state: where the backfill ended, or (for metrics
        # that had events since) from the newest event loaded
        bounds = lower_datetime_bounds(event_filters(emulator))
        assert bounds and min(bounds) >= backfill_end, name
        clicked = emulator.account.metric_id("Clicked Email", integration_key="klaviyo")
        click_bounds = lower_datetime_bounds([f for f in event_filters(emulator) if clicked in f])
        assert click_bounds and min(click_bounds) > backfill_end, name
