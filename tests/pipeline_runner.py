"""Runs one load in its own process, so tests can kill it or read everything it prints.

    python tests/pipeline_runner.py <base_url> <work_dir> [resource,resource]

The API key comes from SOURCES__KLAVIYO__API_KEY, as a user's would; KLAVIYO_TEST_FILE_FORMAT
picks the loader file format (dlt's default otherwise).

With KLAVIYO_TEST_KILL_AFTER_JOB=<table>.<file format> (e.g. `list_members.sql`, `profiles.parquet`)
the process SIGKILLs its process group the moment the first such load job has committed in the
destination but before dlt records it as done: the window in which dlt's loader runs the job again.
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from klaviyo import klaviyo_source  # noqa: E402


def kill_after_job_commits(target: str) -> None:
    from dlt.common.destination.client import RunnableLoadJob
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    release = RunnableLoadJob._release

    def release_or_die(job: RunnableLoadJob, next_state: Any) -> None:
        parsed = ParsedLoadJobFileName.parse(job._file_path)
        if next_state == "completed" and f"{parsed.table_name}.{parsed.file_format}" == target:
            print(f"killed after {parsed.file_name()} committed", flush=True)
            # the test starts this process as its own group's leader: this kills only the load
            if os.getpgid(0) == os.getpid():
                os.killpg(os.getpgid(0), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        release(job, next_state)

    RunnableLoadJob._release = release_or_die  # type: ignore[method-assign]


def main() -> None:
    base_url, work_dir = sys.argv[1], Path(sys.argv[2])
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
    print(pipeline.run(source, loader_file_format=os.environ.get("KLAVIYO_TEST_FILE_FORMAT") or None))


if __name__ == "__main__":
    main()
