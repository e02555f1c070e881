"""A SIGKILL in the loader's re-run window (a job committed, not yet recorded as done) doubles no row.

dlt runs such a job again when the pipeline resumes. Snapshot tables are merged with a delete of
every old row and deduplication of the staged rows, profiles merge without nested tables, so a job
that runs twice leaves the same table.
"""

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import dlt
import pyarrow.parquet as pq
import pytest

from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
from tests.helpers import source_for, table_counts

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = AccountSpec(seed=5, profiles=600, events=300, lists=3, large_list_members=450)


def run_loader(emu: Any, work: Path, tables: str, kill_after: str = "") -> subprocess.CompletedProcess:
    file_format = kill_after.split(".")[-1] if kill_after.endswith(".parquet") else ""
    env = {
        **os.environ,
        "SOURCES__KLAVIYO__API_KEY": emu.api_key,
        "DLT_DATA_DIR": str(work / "data"),
        "KLAVIYO_TEST_KILL_AFTER_JOB": kill_after,
        "KLAVIYO_TEST_FILE_FORMAT": file_format,
    }
    command = [sys.executable, str(REPO / "tests" / "pipeline_runner.py"), emu.base_url, str(work), tables]
    # its own process group, so the runner's SIGKILL of its group reaches no test process
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, start_new_session=True
    )


def keys(work: Path, table: str, key: str) -> List[Tuple[Any, ...]]:
    pipeline = dlt.pipeline(
        pipeline_name="klaviyo_runner",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(work / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(f"select {key} from {table}")]


def membership_truth(emu: Any) -> List[Tuple[Any, ...]]:
    account = emu.account
    return sorted(
        (list_id, member) for list_id in account.list_ids() for member in account.list_members(list_id)
    )


def exclusion_truth(emu: Any) -> List[Tuple[Any, ...]]:
    return sorted((profile_id,) for profile_id in emu.account.suppressed_profiles())


def profile_truth(emu: Any) -> List[Tuple[Any, ...]]:
    return sorted((profile_id,) for profile_id in emu.account.profile_ids())


TABLES: Dict[str, Tuple[str, Any]] = {
    "list_members": ("list_id, id", membership_truth),
    "global_exclusions": ("id", exclusion_truth),
    "profiles": ("id", profile_truth),
}


def change_the_account(emu: Any) -> None:
    """Between the runs: a member leaves a list, a profile is suppressed, profiles are updated."""
    account = emu.account
    list_id = max(account.list_ids(), key=lambda i: len(account.list_members(i)))
    account.remove_list_member(list_id, sorted(account.list_members(list_id))[0])
    unsuppressed = sorted(account.profile_ids() - set(account.suppressed_profiles()))
    account.suppress_profile(unsuppressed[0], "USER_SUPPRESSED")
    account.update_profiles(400)


@pytest.mark.parametrize(
    "table, job",
    [
        # pages reach dlt as Arrow tables, so the staged rows are parquet jobs on any run
        ("list_members", "parquet"),  # the staged rows
        ("list_members", "sql"),  # the merge into the table
        ("global_exclusions", "parquet"),
        ("profiles", "parquet"),
        ("profiles", "sql"),
    ],
)
def test_a_kill_after_a_load_job_commits_then_a_resume_leaves_no_duplicate_key(
    tmp_path: Path, table: str, job: str
) -> None:
    key, truth = TABLES[table]
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        first = run_loader(emu, tmp_path, table)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        change_the_account(emu)
        killed = run_loader(emu, tmp_path, table, kill_after=f"{table}.{job}")
        assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
        assert f"killed after {table}." in killed.stdout
        resumed = run_loader(emu, tmp_path, table)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        expected = truth(emu)
    loaded = keys(tmp_path, table, key)
    duplicates = len(loaded) - len(set(loaded))
    assert duplicates == 0
    assert sorted(loaded) == expected


def test_a_snapshot_table_whose_rows_all_left_is_emptied(tmp_path: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="klaviyo_snapshot",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        pipeline.run(source_for(emu).with_resources("global_exclusions"))
        assert table_counts(pipeline)["global_exclusions"] > 0
        for profile_id in list(emu.account.suppressed_profiles()):
            emu.account.unsuppress_profile(profile_id)
        pipeline.run(source_for(emu).with_resources("global_exclusions"))
    assert table_counts(pipeline)["global_exclusions"] == 0


def test_a_snapshot_table_on_files_without_merge_is_replaced_not_appended(tmp_path: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="klaviyo_files",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.filesystem(str(tmp_path / "files")),
        dataset_name="klaviyo_data",
    )
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        for _ in range(2):
            # list_members is a snapshot with membership="snapshot" (incremental: test_membership.py)
            source = source_for(emu, membership="snapshot")
            pipeline.run(source.with_resources("global_exclusions", "list_members"))
        expected = {"global_exclusions": exclusion_truth(emu), "list_members": membership_truth(emu)}
    for table, rows in expected.items():
        key = TABLES[table][0].split(", ")
        loaded = sorted(
            tuple(row[k] for k in key) for row in rows_in_files(tmp_path / "files" / "klaviyo_data" / table)
        )
        assert loaded == rows, table


def rows_in_files(folder: Path) -> List[Dict[str, Any]]:
    """The rows of a table that the filesystem destination wrote: parquet (the source's Arrow pages)
    or (gzipped) JSON lines."""
    rows: List[Dict[str, Any]] = []
    for path in folder.glob("*.parquet"):
        rows += pq.read_table(path).to_pylist()
    for path in folder.glob("*.jsonl*"):
        data = path.read_bytes()
        text = gzip.decompress(data).decode() if data[:2] == b"\x1f\x8b" else data.decode()
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows
