"""Runs one load in its own process, so tests can kill it or read everything it prints.

    python tests/pipeline_runner.py <base_url> <work_dir> [resource,resource]

The API key comes from SOURCES__KLAVIYO__API_KEY, as a user's would; KLAVIYO_TEST_FILE_FORMAT
picks the loader file format (dlt's default otherwise).

With KLAVIYO_TEST_KILL_AFTER_JOB=<table>.<file format> (e.g. `list_members.sql`, `profiles.parquet`)
the process SIGKILLs its process group the moment the first such load job has committed in the
destination but before dlt records it as done: the window in which dlt's loader runs the job again.

With KLAVIYO_TEST_UNTIL_CAUGHT_UP=1 it runs `load_history` (one committed chunk per run, until no
table has history left) instead of one `pipeline.run`; KLAVIYO_TEST_KILL_IN_RUN=<n> makes the kill
above happen only in the n-th run, and KLAVIYO_TEST_KILL_AT=normalize kills as that run's normalize
step starts (its extract complete, its package not yet normalized).
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from klaviyo import klaviyo_source  # noqa: E402
from klaviyo.history import load_history  # noqa: E402

RUNS = [0]  # pipeline runs started by this process


def in_kill_run() -> bool:
    return RUNS[0] == int(os.environ.get("KLAVIYO_TEST_KILL_IN_RUN") or RUNS[0])


def die(message: str) -> None:
    print(message, flush=True)
    # the test starts this process as its own group's leader: this kills only the load
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def count_runs_and_kill_at_normalize() -> None:
    run, normalize = dlt.Pipeline.run, dlt.Pipeline.normalize

    def counted_run(pipeline: dlt.Pipeline, *args: Any, **kwargs: Any) -> Any:
        RUNS[0] += 1
        return run(pipeline, *args, **kwargs)

    def normalize_or_die(pipeline: dlt.Pipeline, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("KLAVIYO_TEST_KILL_AT") == "normalize" and in_kill_run():
            die(f"killed at the normalize step of run {RUNS[0]}")
        return normalize(pipeline, *args, **kwargs)

    dlt.Pipeline.run = counted_run  # type: ignore[method-assign]
    dlt.Pipeline.normalize = normalize_or_die  # type: ignore[method-assign]


def kill_after_job_commits(target: str) -> None:
    from dlt.common.destination.client import RunnableLoadJob
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    release = RunnableLoadJob._release

    def release_or_die(job: RunnableLoadJob, next_state: Any) -> None:
        parsed = ParsedLoadJobFileName.parse(job._file_path)
        if (
            next_state == "completed"
            and f"{parsed.table_name}.{parsed.file_format}" == target
            and in_kill_run()
        ):
            die(f"killed after {parsed.file_name()} committed")
        release(job, next_state)

    RunnableLoadJob._release = release_or_die  # type: ignore[method-assign]


def main() -> None:
    base_url, work_dir = sys.argv[1], Path(sys.argv[2])
    count_runs_and_kill_at_normalize()
    if target := os.environ.get("KLAVIYO_TEST_KILL_AFTER_JOB"):
        kill_after_job_commits(target)
    source = klaviyo_source(base_url=base_url)
    if len(sys.argv) > 3:
        source = source.with_resources(*sys.argv[3].split(","))
    pipeline = dlt.pipeline(
        pipeline_name="klaviyo_runner",
        pipelines_dir=str(work_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(work_dir / "klaviyo.duckdb")),
        dataset_name="klaviyo_data",
    )
    file_format = os.environ.get("KLAVIYO_TEST_FILE_FORMAT") or None
    if os.environ.get("KLAVIYO_TEST_UNTIL_CAUGHT_UP"):
        tables = sys.argv[3].split(",") if len(sys.argv) > 3 else None

        def make_source() -> Any:
            source = klaviyo_source(base_url=base_url)
            return source.with_resources(*tables) if tables else source

        for info in load_history(pipeline, make_source, progress=print, loader_file_format=file_format):
            print(info)
        return
    print(pipeline.run(source, loader_file_format=file_format))


if __name__ == "__main__":
    main()
