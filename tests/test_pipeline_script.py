"""klaviyo_pipeline.py as a user runs it: its own folder, quiet output, one line when it fails."""

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import dlt
import duckdb

from klaviyo_emulator import AccountSpec, EmulatorConfig, Fault, run_emulator
from tests.conftest import SMALL_ACCOUNT
from tests.helpers import expected_metric_events

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "klaviyo_pipeline.py"


def script_env(home: Path, emulator: Any = None, api_key: str = "") -> Dict[str, str]:
    """One user's environment: dlt's home folder (global pipelines) shared by all their folders."""
    env = {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PYTHONPATH": str(REPO),
        "DLT_DATA_DIR": str(home / "dlt-home"),
    }
    if emulator is not None:
        env["SOURCES__KLAVIYO__BASE_URL"] = emulator.base_url
        env["SOURCES__KLAVIYO__API_KEY"] = api_key or emulator.api_key
    return env


def run_script(args: List[str], cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def query(database: Path, sql: str) -> List[Any]:
    with duckdb.connect(str(database)) as connection:
        return connection.execute(sql).fetchall()


def test_the_demo_writes_into_its_own_folder_whatever_ran_before(tmp_path: Path) -> None:
    env = script_env(tmp_path)
    first, second = tmp_path / "clone_a", tmp_path / "clone_b"
    assert run_script(["--demo"], first, env).returncode == 0
    first_file = first / "klaviyo_demo.duckdb"
    written = first_file.stat().st_mtime_ns

    result = run_script(["--demo"], second, env)
    assert result.returncode == 0, result.stderr
    assert (second / "klaviyo_demo.duckdb").exists()
    assert first_file.stat().st_mtime_ns == written

    for path in sorted(first.rglob("*"), reverse=True):  # the first clone is deleted
        path.unlink() if path.is_file() else path.rmdir()
    first.rmdir()
    again = run_script(["--demo"], second, env)
    assert again.returncode == 0, again.stderr
    assert query(second / "klaviyo_demo.duckdb", "select count(*) from klaviyo_data.click")[0][0] > 0


def test_a_demo_run_prints_compact_progress_one_summary_and_no_warnings(tmp_path: Path) -> None:
    result = run_script(["--demo"], tmp_path / "demo", script_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no psutil warning, no dlt advice about empty columns
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith(("Extract", "Normalize", "Load "))]
    assert progress and all(len(line) < 120 for line in progress), progress
    assert len(progress) <= 16  # a start and an end line per step, plus one every 10 s
    assert sum(line.startswith("Loaded ") for line in lines) == 1
    assert str(tmp_path / "demo" / "klaviyo_demo.duckdb") in result.stdout


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    from klaviyo_pipeline import CompactProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = CompactProgress(terminal)
    progress._start("Extract klaviyo")
    progress.step = "Extract klaviyo"
    for _ in range(3):
        progress.update("click", inc=100)
        progress.on_log()
    progress._stop()
    shown = terminal.getvalue()
    assert shown.count("\r") >= 3 and shown.count("\n") == 1 and shown.endswith("\n")
    assert "Extract klaviyo: 300 rows in 1 tables" in shown


def test_a_failed_run_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emulator:
        env = script_env(tmp_path, emulator, api_key="pk_wrong_key_000000000000000000000")
        result = run_script(["--resources", "profiles"], tmp_path / "project", env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("klaviyo_pipeline.py: the run failed in extract:")
    assert "API key" in result.stderr and "Traceback" not in result.stderr


def test_a_base_url_without_api_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emulator:
        env = {
            **script_env(tmp_path, emulator),
            "SOURCES__KLAVIYO__BASE_URL": emulator.base_url[: -len("/api")],
        }
        result = run_script(["--resources", "profiles"], tmp_path / "project", env)
        assert emulator.request_log == []
    assert result.returncode == 1
    assert "does not end in /api" in result.stderr and "https://a.klaviyo.com/api" in result.stderr


def test_full_refresh_of_one_resource_keeps_the_other_tables_and_their_state(tmp_path: Path) -> None:
    project = tmp_path / "project"
    database = project / "klaviyo.duckdb"
    with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emulator:
        env = script_env(tmp_path, emulator)
        assert run_script(["--resources", "profiles,click"], project, env).returncode == 0
        clicks = query(database, "select count(*) from klaviyo_data.click")[0][0]
        profiles = query(database, "select count(*) from klaviyo_data.profiles")[0][0]
        # a row of each table goes missing; only a reload from the start brings it back
        query(database, "delete from klaviyo_data.click where id = (select min(id) from klaviyo_data.click)")
        query(
            database,
            "delete from klaviyo_data.profiles where id = (select min(id) from klaviyo_data.profiles)",
        )
        profiles_cursor_before = profiles_cursor(project)

        emulator.clear_log()
        result = run_script(["--full-refresh", "--resources", "click"], project, env)
        assert result.returncode == 0, result.stderr
        event_filters = [
            e.query.get("filter", "") for e in emulator.request_log if e.path.endswith("/events")
        ]

    assert query(database, "select count(*) from klaviyo_data.click")[0][0] == clicks
    assert query(database, "select count(*) from klaviyo_data.profiles")[0][0] == profiles - 1
    assert event_filters and not any("greater" in f for f in event_filters)  # click read from the start
    assert profiles_cursor(project) == profiles_cursor_before


def profiles_cursor(project: Path) -> Any:
    pipeline = dlt.attach("klaviyo", pipelines_dir=str(project / ".dlt" / "pipelines"))
    return pipeline.state["sources"]["klaviyo"]["resources"]["profiles"]["incremental"]["updated"][
        "last_value"
    ]


def test_a_second_run_of_the_same_pipeline_fails_at_once_saying_another_run_holds_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    config = EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0, latency_ms=150)
    with run_emulator(config) as emulator:
        env = script_env(tmp_path, emulator)
        project.mkdir()
        first = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lock = project / ".dlt" / "pipelines" / ".klaviyo.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = run_script([], project, env)
        second_took = time.monotonic() - started
        first_out, first_err = first.communicate(timeout=300)
    assert second.returncode == 1
    assert f"another run holds pipeline 'klaviyo' (pid {first.pid}" in second.stderr, second.stderr
    assert second_took < 15
    assert first.returncode == 0, first_err.decode()


def test_a_duckdb_file_held_by_another_process_gets_a_clear_message(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DUCKDB, str(project / "klaviyo.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with run_emulator(EmulatorConfig(account=SMALL_ACCOUNT, rate_limit_scale=0)) as emulator:
            result = run_script(["--resources", "lists"], project, script_env(tmp_path, emulator))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "the DuckDB file is open in another process" in result.stderr


HOLD_DUCKDB = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


def test_the_demo_flag_says_which_file_it_writes(tmp_path: Path) -> None:
    result = run_script(["--help"], tmp_path, script_env(tmp_path))
    assert "--demo" in result.stdout and "klaviyo_demo.duckdb" in result.stdout
    assert "not available here" not in result.stdout


def test_in_a_project_without_the_emulator_the_demo_says_it_cannot_run(tmp_path: Path) -> None:
    # what `dlt init klaviyo duckdb` copies: the source and the script, not the emulator
    shutil.copytree(REPO / "klaviyo", tmp_path / "klaviyo")
    shutil.copy(SCRIPT, tmp_path / "klaviyo_pipeline.py")
    env = {k: v for k, v in script_env(tmp_path).items() if k != "PYTHONPATH"}
    command = [sys.executable, "klaviyo_pipeline.py"]
    shown = subprocess.run([*command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "not available here: needs a clone of the source repository" in " ".join(shown.stdout.split())
    demo = subprocess.run([*command, "--demo"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert demo.returncode != 0
    assert demo.stderr.strip().startswith(
        "--demo runs the Klaviyo emulator (klaviyo_emulator/), which `dlt init`"
    )


def test_the_script_loads_a_long_history_in_committed_chunks_until_every_table_is_caught_up(
    tmp_path: Path,
) -> None:
    account = AccountSpec(seed=3, profiles=300, events=12000)
    with run_emulator(EmulatorConfig(account=account, rate_limit_scale=0)) as emulator:
        env = {**script_env(tmp_path, emulator), "SOURCES__KLAVIYO__CHUNK_ROWS": "1500"}
        result = run_script([], tmp_path / "project", env)
        receive = len(expected_metric_events(emulator.account, ("Received Email",)))
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stdout.splitlines() if line.startswith("receive: ")]
    assert len(progress) >= 2 and all(" of 20" in line and "..now, " in line for line in progress), progress
    assert "the next run continues" not in result.stderr  # load_history says progress instead
    database = tmp_path / "project" / "klaviyo.duckdb"
    assert query(database, "select count(*), count(distinct id) from klaviyo_data.receive")[0] == (
        receive,
        receive,
    )
    assert sum(line.startswith("Loaded ") for line in result.stdout.splitlines()) == 1


def test_a_failed_chunked_run_says_what_was_kept_and_what_the_next_run_does(tmp_path: Path) -> None:
    account = AccountSpec(seed=3, profiles=300, events=12000)
    with run_emulator(EmulatorConfig(account=account, rate_limit_scale=0)) as emulator:
        env = {**script_env(tmp_path, emulator), "SOURCES__KLAVIYO__CHUNK_ROWS": "1500"}
        served = []

        def outage_after_the_first_chunk(info: Any) -> Any:
            if info.path.endswith("/events"):
                served.append(info)
            return Fault(status=503) if len(served) > 3 else None

        emulator.fault_hook = outage_after_the_first_chunk
        result = run_script(["--resources", "receive"], tmp_path / "project", env)
    assert result.returncode == 1
    *retries, last = result.stderr.splitlines()
    assert all("dlt's retrying session tries again" in line for line in retries), retries
    assert last.startswith("klaviyo_pipeline.py: the run failed in extract: GET /events: HTTP 503")
    assert "resumes where it stopped" not in last
    assert "Kept: what earlier runs loaded (history so far: receive: 20" in last
    assert "not this run's unloaded chunks; the next run continues from there." in last
