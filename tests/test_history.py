"""History in committed chunks: a long backlog loads one chunk of about `chunk_rows` rows per run,
each committed with the cursor that ends where it ends; failures lose at most the chunk in flight;
an earlier start_date backfills only the missing range."""

import doctest
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import dlt
import pytest
from dlt.common import logger as dlt_logger

from klaviyo import klaviyo_source
from klaviyo.history import Chunk, backlog, load_history
from klaviyo.reader import Query, Reader
from klaviyo.settings import DEFAULT_WORKERS
from klaviyo.tables import Window
from klaviyo_emulator import AccountSpec, EmulatorConfig, Fault, RequestInfo, run_emulator
from tests.helpers import column_values
from tests.test_docs import user_env
from tests.test_reader import WINDOWED, FakeClient

REPO = Path(__file__).resolve().parent.parent
# about 10,000 `receive` events over three years: with chunks of 3,000 rows, four runs, each
# reading two pages, then rounds of windows in parallel
ACCOUNT = AccountSpec(seed=3, profiles=300, events=24000)
CHUNK_ROWS = 3000
# A chunk ends after the windows in flight when it reached its rows, so two loads of one history
# can cut it a few windows apart: each run may read up to this many requests more or less.
IN_FLIGHT = DEFAULT_WORKERS


def receive_truth(emu: Any) -> Dict[str, datetime]:
    metric_id = emu.account.metric_id("Received Email", integration_key="klaviyo")
    return {event["id"]: event["datetime"] for event in emu.account.events_for_metric(metric_id)}


def is_a_prefix(loaded: List[str], truth: Dict[str, datetime]) -> bool:
    """The loaded events are exactly those up to the latest loaded one: none skipped, none twice."""
    if len(loaded) != len(set(loaded)) or not set(loaded) <= set(truth):
        return False
    newest = max((truth[i] for i in loaded), default=None)
    return newest is None or set(loaded) == {i for i, moment in truth.items() if moment <= newest}


def receive_pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="klaviyo_runner",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )


def event_requests(emu: Any) -> int:
    return sum(1 for entry in emu.request_log if entry.path.endswith("/events"))


def receive_source(emu: Any, **options: Any) -> Any:
    options = {"api_key": emu.api_key, "base_url": emu.base_url, "chunk_rows": CHUNK_ROWS, **options}
    return klaviyo_source(**options).with_resources("receive")


def test_a_bare_run_loads_one_chunk_whose_cursor_passes_no_unloaded_row_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = receive_pipeline(tmp_path)
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        truth = receive_truth(emu)
        # what the source hands dlt's logger (which does not propagate to pytest's capture, and
        # whose stream an earlier test may have given dlt's handler)
        said: List[str] = []
        dlt_warning = dlt_logger.warning
        monkeypatch.setattr(
            dlt_logger, "warning", lambda msg, *a, **k: (said.append(msg), dlt_warning(msg, *a, **k))
        )
        pipeline.run(receive_source(emu))
        loaded = column_values(pipeline, "receive")
        cursor = pipeline.state["sources"]["klaviyo"]["resources"]["receive"]["incremental"]["datetime"]
        warnings = [message for message in said if "the next run continues" in message]

        assert CHUNK_ROWS <= len(loaded) < len(truth)
        assert is_a_prefix(loaded, truth)
        # every event before the committed cursor is loaded
        assert {i for i, moment in truth.items() if moment < cursor["last_value"]} <= set(loaded)
        assert len(warnings) == 1 and "receive: 20" in warnings[0]  # one warning, from dlt's logger
        assert "%: this run loads history up to there" in warnings[0]
        assert list(backlog(pipeline)) == ["receive"]

        infos = load_history(pipeline, lambda: receive_source(emu))
        assert len(infos) >= 2
    assert sorted(column_values(pipeline, "receive")) == sorted(truth)
    assert backlog(pipeline) == {}


def test_a_table_of_two_metrics_ends_its_chunk_where_both_are_read() -> None:
    """unsubscribe reads two metrics into one table under one cursor: the second stops where the
    first did, or earlier, and the chunk ends there; every row of both before that end is read."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # templates page 10 rows at a time: 40 and 30 pages, and a budget of 10 pages per metric
    dense = [{"id": f"a{i}", "datetime": start + timedelta(minutes=7 * i)} for i in range(400)]
    sparse = [{"id": f"b{i}", "datetime": start + timedelta(minutes=11 * i)} for i in range(300)]
    cursor = Window("datetime")
    now = start + timedelta(days=10)
    chunk = Chunk(cursor=cursor, state={}, start=None, upper=None, last=now, budget=100)
    read: Set[str] = set()
    for rows in (dense, sparse):
        for page in Reader(FakeClient(rows), workers=2).read_split(Query(WINDOWED), chunk):
            read |= {row["id"] for row in page}
    assert chunk.ended_at is not None and chunk.ended_at < now
    before_end = {r["id"] for r in dense + sparse if r["datetime"] < chunk.ended_at}
    assert before_end <= read and len(before_end) >= 100
    assert chunk.state["reached"] == chunk.ended_at.isoformat()


def test_a_chunk_whose_rows_come_from_a_window_denser_than_expected_stops_at_twice_its_budget() -> None:
    """A sparse stretch, then a dense one that falls into the round's last window: free workers
    split that window, and once the chunk has read twice its budget every window stops, the chunk
    ending where the first of them stopped, every row before that read."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # templates page 10 rows at a time: 20 sparse pages (a row a day), then 300 dense ones (a minute)
    sparse = [{"id": f"s{i}", "datetime": start + timedelta(days=i)} for i in range(200)]
    dense = [{"id": f"d{i}", "datetime": start + timedelta(days=200, minutes=i)} for i in range(3000)]
    now = start + timedelta(days=210)
    chunk = Chunk(cursor=Window("datetime"), state={}, start=None, upper=None, last=now, budget=1000)
    client = FakeClient(sparse + dense)

    read = [
        row["id"] for page in Reader(client, workers=8).read_split(Query(WINDOWED), chunk) for row in page
    ]

    assert chunk.ended_at is not None and start + timedelta(days=200) < chunk.ended_at < now
    before_end = {r["id"] for r in sparse + dense if r["datetime"] < chunk.ended_at}
    assert before_end <= set(read) and len(before_end) > 200  # more than the sparse stretch
    assert len(read) == len(set(read)) < 2500  # not the 3,200 rows of the whole range
    assert chunk.state["reached"] == chunk.ended_at.isoformat()


def test_an_earlier_start_date_backfills_only_the_missing_range_then_continues_incrementally(
    tmp_path: Path,
) -> None:
    pipeline = receive_pipeline(tmp_path)
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        truth = receive_truth(emu)
        later, earlier = datetime(2025, 6, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, tzinfo=timezone.utc)
        load_history(pipeline, lambda: receive_source(emu, start_date=later.isoformat()))
        assert sorted(column_values(pipeline, "receive")) == sorted(i for i, m in truth.items() if m >= later)

        emu.clear_log()
        load_history(pipeline, lambda: receive_source(emu, start_date=earlier.isoformat()))
        filters = [e.query["filter"] for e in emu.request_log if e.path.endswith("/events")]
        assert sorted(column_values(pipeline, "receive")) == sorted(
            i for i, m in truth.items() if m >= earlier
        )
        # the backfill read only [earlier, later), nothing of what the table held
        cursor = pipeline.state["sources"]["klaviyo"]["resources"]["receive"]["incremental"]["datetime"]
        for low, high in map(filter_bounds, filters):
            assert (earlier <= low and high is not None and high <= later) or low >= cursor["last_value"]
        assert any(high == later for _, high in map(filter_bounds, filters))

        newest = max(truth.values())
        emu.account.add_events(5, "Received Email", start=newest, end=newest + timedelta(hours=1))
        emu.clear_log()
        pipeline.run(receive_source(emu, start_date=earlier.isoformat()))
        (only,) = [e.query["filter"] for e in emu.request_log if e.path.endswith("/events")]
        assert "greater-or-equal(datetime,2026-" in only and "less-than" not in only
        truth = receive_truth(emu)
    loaded = column_values(pipeline, "receive")
    assert len(loaded) == len(set(loaded)) and set(loaded) == {i for i, m in truth.items() if m >= earlier}


def filter_bounds(condition: str) -> Tuple[datetime, Optional[datetime]]:
    low = re.search(r"greater-or-equal\(datetime,([^)]+)\)", condition)
    high = re.search(r"less-than\(datetime,([^)]+)\)", condition)
    assert low, condition
    return datetime.fromisoformat(low[1]), datetime.fromisoformat(high[1]) if high else None


def clean_load(tmp_path: Path, emu: Any) -> List[int]:
    """Events requests of each run of an undisturbed load (the same account, another pipeline)."""
    pipeline = receive_pipeline(tmp_path / "clean")
    emu.clear_log()
    per_run: List[int] = []
    load_history(
        pipeline, lambda: receive_source(emu), after_each_run=lambda: per_run.append(event_requests(emu))
    )
    emu.clear_log()
    return [b - a for a, b in zip([0, *per_run], per_run, strict=False)]


def start_loader(emu: Any, work: Path, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "SOURCES__KLAVIYO__API_KEY": emu.api_key,
        "SOURCES__KLAVIYO__CHUNK_ROWS": str(CHUNK_ROWS),
        "KLAVIYO_TEST_UNTIL_CAUGHT_UP": "1",
        "DLT_DATA_DIR": str(work / "data"),
        **env,
    }
    command = [sys.executable, str(REPO / "tests" / "pipeline_runner.py"), emu.base_url, str(work), "receive"]
    return subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# (how the second run is killed, runner environment, whether its chunk was extracted before the kill)
KILLS = {
    "extract": ({}, False),
    "normalize": ({"KLAVIYO_TEST_KILL_AT": "normalize", "KLAVIYO_TEST_KILL_IN_RUN": "2"}, True),
    "load": ({"KLAVIYO_TEST_KILL_AFTER_JOB": "receive.parquet", "KLAVIYO_TEST_KILL_IN_RUN": "2"}, True),
}


@pytest.mark.parametrize("moment", list(KILLS))
def test_a_kill_in_the_second_chunk_keeps_the_first_and_the_rerun_reads_only_what_is_left(
    tmp_path: Path, moment: str
) -> None:
    env, extracted = KILLS[moment]
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        per_run = clean_load(tmp_path, emu)
        truth = receive_truth(emu)
        assert len(per_run) >= 3, per_run
        loader = start_loader(emu, tmp_path, **env)
        if moment == "extract":  # SIGKILL from the emulator, half way through the second chunk
            kill_at = per_run[0] + per_run[1] // 2

            def kill(info: RequestInfo) -> Optional[Fault]:
                if info.path.endswith("/events") and event_requests(emu) + 1 >= kill_at:
                    os.killpg(loader.pid, signal.SIGKILL)
                return None

            emu.fault_hook = kill
        out, err = loader.communicate(timeout=300)
        assert loader.returncode == -signal.SIGKILL, out[-2000:] + err[-2000:]
        emu.fault_hook = None
        # right after the kill: the first chunk (at least) is in the table, as a prefix of history
        pipeline = receive_pipeline(tmp_path)
        after_kill = column_values(pipeline, "receive")
        assert len(after_kill) >= CHUNK_ROWS and is_a_prefix(after_kill, truth)

        emu.clear_log()
        rerun = start_loader(emu, tmp_path)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, out[-2000:] + err[-2000:]
        rerun_requests = event_requests(emu)
    loaded = column_values(pipeline, "receive")
    assert len(loaded) == len(set(loaded)) and set(loaded) == set(truth)
    # the remaining chunks, plus the second one again where the kill came before it was extracted
    remaining = per_run[1:] if not extracted else per_run[2:]
    assert rerun_requests <= sum(remaining) + IN_FLIGHT * len(remaining), (rerun_requests, per_run)


def failing_after(emu: Any, requests: int, failure: Any) -> Any:
    def hook(info: RequestInfo) -> Optional[Fault]:
        if info.path.endswith("/events") and event_requests(emu) + 1 > requests:
            return failure(emu)
        return None

    return hook


def outage(emu: Any) -> Fault:
    return Fault(status=503)


def revoked_key(emu: Any) -> None:
    emu.config.api_key = "pk_revoked_0000000000000000000000"
    return None


@pytest.mark.parametrize("failure", [outage, revoked_key], ids=["outage", "revoked_key"])
def test_a_failure_in_the_second_chunk_keeps_the_first_and_the_next_run_continues(
    tmp_path: Path, failure: Any
) -> None:
    pipeline = receive_pipeline(tmp_path)
    with run_emulator(EmulatorConfig(account=ACCOUNT, rate_limit_scale=0)) as emu:
        per_run = clean_load(tmp_path, emu)
        truth, key = receive_truth(emu), emu.api_key
        emu.fault_hook = failing_after(emu, per_run[0] + per_run[1] // 2, failure)
        with pytest.raises(Exception) as failed:
            load_history(pipeline, lambda: receive_source(emu, api_key=key))
        after_failure = column_values(pipeline, "receive")
        assert len(after_failure) >= CHUNK_ROWS and is_a_prefix(after_failure, truth)
        assert not pipeline.has_pending_data
        if failure is outage:
            assert "Tables keep what earlier runs loaded" in str(failed.value)
            assert "resumes where it stopped" not in str(failed.value)
        else:
            assert "API key" in str(failed.value)

        emu.fault_hook, emu.config.api_key = None, key
        emu.clear_log()
        load_history(pipeline, lambda: receive_source(emu))
        rerun_requests = event_requests(emu)
    loaded = column_values(pipeline, "receive")
    assert len(loaded) == len(set(loaded)) and set(loaded) == set(truth)
    assert rerun_requests <= sum(per_run[1:]) + IN_FLIGHT * len(per_run[1:]), (rerun_requests, per_run)


@pytest.mark.parametrize("where", ["module", "load_history"])
def test_the_docstring_examples_of_history_run(emulator: Any, tmp_path: Path, where: str) -> None:
    import klaviyo.history

    docstring = klaviyo.history.__doc__ if where == "module" else klaviyo.history.load_history.__doc__
    code = "".join(example.source for example in doctest.DocTestParser().get_examples(docstring or ""))
    assert "load_history(pipeline" in code
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=user_env(tmp_path, emulator),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "klaviyo.duckdb").exists()
