"""Never lose, never duplicate, never leak: faults, interrupted runs, bad input and the API key."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo import klaviyo_source
from klaviyo_emulator import AccountSpec, EmulatorConfig, Fault, run_emulator
from tests.helpers import column_values, source_for, table_counts

REPO = Path(__file__).resolve().parent.parent
FAULT_ACCOUNT = AccountSpec(seed=5, profiles=600, events=2500, lists=3, large_list_members=450)


def every_table(emu: Any) -> Any:
    """All tables but the reports, whose 2-requests-a-minute limit would make the test slow."""
    source = source_for(emu)
    return source.with_resources(*[name for name in source.resources if not name.endswith("_report")])


def new_pipeline(work_dir: Path, name: str = "klaviyo_test") -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(work_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(work_dir / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )


def snapshot(pipeline: dlt.Pipeline) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every row of every table, without dlt's load bookkeeping, in a stable order."""
    tables = table_counts(pipeline)
    with pipeline.sql_client() as client:
        result = {}
        for table in tables:
            # column order follows the order dlt met the columns in, which may differ between loads
            columns = sorted(
                r[0]
                for r in client.execute_sql(f"describe {table}")
                # `counted_at` is the time of the run that counted (list_profile_counts)
                if not r[0].startswith("_dlt") and r[0] != "counted_at"
            )
            order = ", ".join(f'"{c}"' for c in columns)
            rows = client.execute_sql(f"select {order} from {table} order by {order}")
            result[table] = [tuple(r) for r in rows]
        return result


def main_tables(snap: Dict[str, List[Tuple[Any, ...]]]) -> Dict[str, List[Tuple[Any, ...]]]:
    # nested tables carry dlt's per-row ids, which differ between loads by design
    return {t: rows for t, rows in snap.items() if "__" not in t}


def test_429_5xx_dropped_connections_and_bad_bodies_do_not_change_what_is_loaded(tmp_path: Path) -> None:
    with run_emulator(EmulatorConfig(account=FAULT_ACCOUNT, rate_limit_scale=0)) as emu:
        clean = new_pipeline(tmp_path / "clean")
        clean.run(every_table(emu))
        emu.config.fault_429_rate = 0.15
        emu.config.fault_retry_after = 1
        emu.config.fault_5xx_rate = 0.05
        emu.config.fault_drop_rate = 0.02
        emu.config.fault_bad_json_rate = 0.02
        emu.clear_log()
        faulty = new_pipeline(tmp_path / "faulty")
        faulty.run(every_table(emu))
        faults = [e for e in emu.request_log if e.fault]
    assert len(faults) >= 10, "the fault knobs must actually have fired"
    assert {e.status for e in faults} & {429} and {e.status for e in faults} & {500, 502, 503}
    assert main_tables(snapshot(faulty)) == main_tables(snapshot(clean))
    assert table_counts(faulty) == table_counts(clean)


def test_a_wrong_key_fails_within_five_requests_without_retrying(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(klaviyo_source(api_key="pk_not_the_right_one", base_url=emulator.base_url))
    assert "API key" in str(failure.value)
    assert 1 <= len(emulator.request_log) <= 5
    assert all(e.status == 401 for e in emulator.request_log)


def test_a_key_revoked_mid_run_stops_it_and_keeps_what_was_loaded(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    pipeline.run(source_for(emulator).with_resources("metrics", "profiles"))
    before = table_counts(pipeline)
    seen = {"requests": 0}

    def revoke_after_three(info: Any) -> Any:
        seen["requests"] += 1
        if seen["requests"] == 3:
            emulator.config.api_key = "pk_revoked"
        return None

    emulator.fault_hook = revoke_after_three
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator))
    assert "API key" in str(failure.value) and "401" in str(failure.value)
    assert table_counts(pipeline) == before


def test_a_400_is_not_retried_and_shows_klaviyos_detail_and_parameter(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    emulator.fault_hook = lambda info: Fault(status=400) if info.path.rstrip("/").endswith("/lists") else None
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator).with_resources("lists"))
    assert "HTTP 400" in str(failure.value)
    assert len([e for e in emulator.request_log if e.path.rstrip("/").endswith("/lists")]) == 1


def test_a_retired_revision_says_how_to_change_it(emulator: Any, pipeline: dlt.Pipeline) -> None:
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator, revision="2023-02-22").with_resources("metrics"))
    message = str(failure.value)
    assert "2023-02-22" in message and "revision" in message


def test_a_daily_quota_429_fails_fast_instead_of_sleeping(emulator: Any, pipeline: dlt.Pipeline) -> None:
    emulator.fail_next(1, status=429, retry_after=73473)
    started = time.monotonic()
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator).with_resources("metrics"))
    assert time.monotonic() - started < 30
    assert "73473" in str(failure.value) and "GET /metrics" in str(failure.value)


def test_5xx_that_never_recovers_ends_with_an_error_naming_endpoint_and_status(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    emulator.fault_hook = lambda info: Fault(status=503)
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator).with_resources("metrics"))
    assert "GET /metrics" in str(failure.value) and "HTTP 503" in str(failure.value)


def test_a_list_deleted_mid_run_is_skipped_with_a_warning(
    emulator: Any, pipeline: dlt.Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    account = emulator.account
    doomed = account.list_ids()[0]

    def delete_when_members_are_asked(info: Any) -> Any:
        if info.path.rstrip("/").endswith(f"/lists/{doomed}/profiles") and doomed in account.list_ids():
            account.delete_list(doomed)
        return None

    emulator.fault_hook = delete_when_members_are_asked
    with caplog.at_level(logging.WARNING):
        pipeline.run(source_for(emulator).with_resources("list_members"))
    assert doomed not in set(column_values(pipeline, "list_members", "list_id"))
    assert table_counts(pipeline)["list_members"] == sum(
        len(account.list_members(i)) for i in account.list_ids()
    )
    assert any(doomed in r.getMessage() and "deleted" in r.getMessage() for r in caplog.records)


def test_an_exception_in_a_later_resource_loses_and_duplicates_nothing(emulator: Any, tmp_path: Path) -> None:
    reference = new_pipeline(tmp_path / "reference")
    reference.run(source_for(emulator))
    broken = new_pipeline(tmp_path / "broken")
    emulator.fault_hook = lambda info: Fault(status=400) if "/campaigns" in info.path else None
    with pytest.raises(PipelineStepFailed):
        broken.run(source_for(emulator))
    emulator.fault_hook = None
    broken.run(source_for(emulator))
    assert main_tables(snapshot(broken)) == main_tables(snapshot(reference))


def test_a_run_killed_mid_extraction_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    config = EmulatorConfig(account=FAULT_ACCOUNT, rate_limit_scale=0, latency_ms=30)
    with run_emulator(config) as emu:
        reference = new_pipeline(tmp_path / "reference")
        reference.run(source_for(emu))
        work = tmp_path / "killed"
        env = {**os.environ, "SOURCES__KLAVIYO__API_KEY": emu.api_key, "DLT_DATA_DIR": str(work / "data")}
        command = [sys.executable, str(REPO / "tests" / "pipeline_runner.py"), emu.base_url, str(work)]
        emu.clear_log()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while sum("/events" in e.path for e in emu.request_log) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed; slow the emulator down"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stdout + finished.stderr
    resumed = new_pipeline(work, "klaviyo_runner")
    assert main_tables(snapshot(resumed)) == main_tables(snapshot(reference))


def test_future_dated_events_load_but_the_next_run_starts_no_later_than_now(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    now = datetime.now(timezone.utc)
    future = account.add_events(
        3, "Clicked Email", start=now + timedelta(days=30), end=now + timedelta(days=31)
    )
    pipeline.run(source_for(emulator).with_resources("click"))
    assert set(future) <= set(column_values(pipeline, "click"))
    state = pipeline.state["sources"]["klaviyo"]["resources"]["click"]["incremental"]["datetime"]
    assert dlt.common.time.ensure_pendulum_datetime(state["last_value"]) <= datetime.now(timezone.utc)

    late = account.add_events(
        2, "Clicked Email", start=now - timedelta(minutes=5), end=now - timedelta(minutes=1)
    )
    pipeline.run(source_for(emulator).with_resources("click"))
    loaded = column_values(pipeline, "click")
    assert set(late) <= set(loaded) and len(loaded) == len(set(loaded))


@pytest.mark.parametrize("lookback, caught", [(3600, True), (0, False)])
def test_the_lookback_window_catches_events_that_arrive_late(
    emulator: Any, pipeline: dlt.Pipeline, lookback: int, caught: bool
) -> None:
    account = emulator.account
    now = datetime.now(timezone.utc)
    account.add_events(1, "Clicked Email", start=now - timedelta(minutes=2), end=now - timedelta(minutes=1))
    pipeline.run(source_for(emulator, lookback_seconds=lookback).with_resources("click"))
    # dated before the first run, but recorded by Klaviyo only after it
    late = account.add_events(
        2, "Clicked Email", start=now - timedelta(minutes=30), end=now - timedelta(minutes=29)
    )
    pipeline.run(source_for(emulator, lookback_seconds=lookback).with_resources("click"))
    loaded = column_values(pipeline, "click")
    assert (set(late) <= set(loaded)) is caught
    assert len(loaded) == len(set(loaded))


@pytest.mark.parametrize("lookback, caught", [(3600, True), (0, False)])
def test_the_lookback_window_catches_profile_updates_that_become_visible_late(
    emulator: Any, pipeline: dlt.Pipeline, lookback: int, caught: bool
) -> None:
    account = emulator.account
    now = datetime.now(timezone.utc)
    first, late = sorted(account.profile_ids())[:2]
    account.update_profiles([first], at=now - timedelta(minutes=1))
    pipeline.run(source_for(emulator, lookback_seconds=lookback).with_resources("profiles"))
    # stamped before the first run, but applied by Klaviyo only after it
    account.update_profiles([late], at=now - timedelta(minutes=30))
    pipeline.run(source_for(emulator, lookback_seconds=lookback).with_resources("profiles"))
    with pipeline.sql_client() as client:
        updated = client.execute_sql("select updated from profiles where id = %s", late)[0][0]
    assert (updated == now - timedelta(minutes=30)) is caught
    assert len(column_values(pipeline, "profiles")) == len(account.profile_ids())


@pytest.mark.parametrize(
    "options, complaint",
    [
        ({"start_date": "last tuesday"}, "start_date"),
        ({"end_date": "2024-13-45"}, "end_date"),
        ({"start_date": "2024-06-01", "end_date": "2024-01-01"}, "must be after start_date"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": 12345}, "api_key"),
        ({"lookback_seconds": -5}, "lookback_seconds"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_input_gets_a_clear_error_before_any_request(
    emulator: Any, options: dict, complaint: str
) -> None:
    arguments = {"api_key": emulator.api_key, "base_url": emulator.base_url, **options}
    with pytest.raises(ValueError, match=complaint):
        klaviyo_source(**arguments)
    assert emulator.request_log == []


def test_an_unknown_resource_name_lists_the_available_ones(emulator: Any) -> None:
    with pytest.raises(Exception, match="profiles") as failure:
        source_for(emulator).with_resources("profile")
    assert "profile" in str(failure.value)
    assert emulator.request_log == []


def test_a_new_property_and_a_type_change_are_kept_in_the_properties_column(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    pipeline.run(source_for(emulator).with_resources("profiles"))
    first, second = sorted(account.profile_ids())[:2]
    account.now = account.now + timedelta(hours=1)
    account.update_profiles([first, second])
    with account.lock:
        account.profiles_by_id[first]["properties"] = {"loyalty_tier": "gold"}
        lifetime = account.profiles_by_id[second]["properties"].get("lifetime_orders")
        account.profiles_by_id[second]["properties"]["lifetime_orders"] = f"{lifetime} orders"
    pipeline.run(source_for(emulator).with_resources("profiles"))
    with pipeline.sql_client() as client:
        loaded = dict(
            client.execute_sql("select id, properties from profiles where id in (%s, %s)", first, second)
        )
    assert json.loads(loaded[first]) == {"loyalty_tier": "gold"}
    assert json.loads(loaded[second])["lifetime_orders"] == f"{lifetime} orders"


def test_the_api_key_appears_in_no_output_and_no_file(tmp_path: Path) -> None:
    key = "pk_LEAKCHECK_5f1e2d3c4b5a69788796a5b4c3d2e1f0"
    with run_emulator(EmulatorConfig(account=FAULT_ACCOUNT, api_key=key, rate_limit_scale=0)) as emu:
        env = {
            **os.environ,
            "SOURCES__KLAVIYO__API_KEY": key,
            "RUNTIME__LOG_LEVEL": "DEBUG",
            "DLT_DATA_DIR": str(tmp_path / "data"),
        }
        command = [sys.executable, str(REPO / "tests" / "pipeline_runner.py"), emu.base_url, str(tmp_path)]
        emu.config.fault_5xx_rate = 0.05
        emu.config.fault_429_rate = 0.05
        ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
        emu.config.api_key = "pk_rotated"  # the next run fails on a revoked key
        failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert failed.returncode != 0
        assert "API key" in failed.stdout + failed.stderr
    outputs = ok.stdout + ok.stderr + failed.stdout + failed.stderr
    assert "DEBUG" in outputs, "the runs must have logged at debug level"
    assert key not in outputs
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written)
    leaks = [str(p) for p in written if key.encode() in p.read_bytes()]
    assert leaks == []
