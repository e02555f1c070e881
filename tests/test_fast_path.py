"""A bare `pipeline.run(source)` takes the Arrow path: parquet written at extract, nothing normalised
row by row, and the process's settings as they were afterwards."""

import gc
from typing import Any

import dlt

from tests.helpers import source_for, table_counts


def test_a_bare_run_loads_every_table_from_parquet_files(emulator: Any, pipeline: dlt.Pipeline) -> None:
    info = pipeline.run(source_for(emulator))
    jobs = [
        job
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if not job.job_file_info.table_name.startswith("_dlt")
    ]
    # files of rows; not the SQL jobs that merge them, nor the empty file that creates a table without rows
    with_rows = {table for table, count in table_counts(pipeline).items() if count}
    data_files = {(job.job_file_info.table_name, job.job_file_info.file_format) for job in jobs}
    data_files = {(table, file_format) for table, file_format in data_files if table in with_rows}
    data_files = {(table, file_format) for table, file_format in data_files if file_format != "sql"}
    assert {table for table, _ in data_files} >= {"profiles", "list_members", "click", "receive", "campaigns"}
    assert {file_format for _, file_format in data_files} == {"parquet"}, data_files


def test_the_garbage_collector_thresholds_are_restored_after_a_run(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    before = gc.get_threshold()
    pipeline.run(source_for(emulator).with_resources("profiles", "click", "list_members"))
    assert gc.get_threshold() == before
