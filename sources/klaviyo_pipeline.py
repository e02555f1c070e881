"""Loads a Klaviyo account into a dlt destination (DuckDB `klaviyo.duckdb` by default).

python klaviyo_pipeline.py                      # the account whose key is in .dlt/secrets.toml
python klaviyo_pipeline.py --start-date 2022-01-01   # backfill: also load what is missing since then
python klaviyo_pipeline.py --demo               # a local emulated account (in a clone of the repository)
python klaviyo_pipeline.py --start-date 2024-01-01 --resources profiles,click
python klaviyo_pipeline.py --full-refresh       # drop what was loaded and load it all again
python klaviyo_pipeline.py --full-refresh --resources click   # drop and reload only `click`
python klaviyo_pipeline.py --accounts brand_a,brand_b   # keys in [sources.klaviyo.accounts]

Everything is kept in the current folder: the DuckDB file `<pipeline name>.duckdb` and dlt's
pipeline state under `.dlt/pipelines/` (so two clones or projects never share a pipeline); inspect
it with `dlt pipeline --pipelines-dir .dlt/pipelines klaviyo info`. Several accounts load one after
the other, each with its own pipeline (`klaviyo_<account>`), state and dataset
(`klaviyo_data_<account>`) in `klaviyo_<account>.duckdb`, so one account's failure is reported by
name and leaves the others untouched.

A long history loads in committed chunks (`chunk_rows` rows per table, `SOURCES__KLAVIYO__CHUNK_ROWS`),
one pipeline run each, until every table is caught up; progress says how far each table has come.
A failed or killed run loses at most its chunks in flight: run the script again and it continues.
"""

import argparse
import contextlib
import difflib
import importlib.util
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Tuple

import dlt
from dlt.common.runtime.collector import LogCollector

from klaviyo import klaviyo_source, metric_tables_for
from klaviyo.client import PROCESS_STATS
from klaviyo.history import backlog, load_history

# dlt keeps pipelines in the user's home by default, where a second clone would find (and write
# into the DuckDB file of) the first one's pipeline; here they live with the project
PIPELINES_DIR = Path(".dlt") / "pipelines"

if __name__ == "__main__":
    # In the repository this script is a link to sources/klaviyo_pipeline.py (the layout `dlt init`
    # reads), and Python puts the link's target folder on sys.path: the link's own folder holds the
    # emulator the demo runs.
    sys.path.append(os.path.dirname(os.path.abspath(sys.argv[0])))

# `dlt init` copies this script but not the emulator the demo runs
DEMO_AVAILABLE = importlib.util.find_spec("klaviyo_emulator") is not None


class RunInProgress(Exception):
    """Another run of the same pipeline holds its lock."""


class RunFailed(Exception):
    """A failed run, with what was kept and what the next run does."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load a Klaviyo account with dlt.")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="load a local emulated Klaviyo account into klaviyo_demo.duckdb"
        + ("" if DEMO_AVAILABLE else " (not available here: needs a clone of the source repository)"),
    )
    parser.add_argument("--start-date", help="load data from this date on (ISO 8601); default all history")
    parser.add_argument("--end-date", help="load data before this date (backfills; state is not moved)")
    parser.add_argument("--resources", help="comma-separated tables to load; default all selected ones")
    parser.add_argument("--extra-metrics", help="comma-separated metric names to load into own tables")
    parser.add_argument("--dataset", default="klaviyo_data", help="dataset (schema) name")
    parser.add_argument("--pipeline-name", help="default: klaviyo, or klaviyo_demo with --demo")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop loaded tables and their state first (with --resources: only those tables)",
    )
    parser.add_argument(
        "--accounts",
        help="comma-separated account names whose keys are in .dlt/secrets.toml [sources.klaviyo.accounts]",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def demo_account() -> Iterator[Tuple[str, str]]:
    """Starts the local Klaviyo emulator; only the demo needs it, so it is imported here."""
    if not DEMO_AVAILABLE:
        raise SystemExit(
            "--demo runs the Klaviyo emulator (klaviyo_emulator/), which `dlt init` does not copy:"
            " run the demo in a clone of the source repository, or set your API key and run without --demo"
        )
    from klaviyo_emulator import EmulatorConfig, run_emulator

    with run_emulator(EmulatorConfig()) as emulator:
        yield emulator.base_url, emulator.api_key


def load(
    args: argparse.Namespace,
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    account: Optional[str] = None,
) -> None:
    options = {
        "start_date": args.start_date,
        "end_date": args.end_date,
        "extra_metrics": [n.strip() for n in (args.extra_metrics or "").split(",") if n.strip()],
    }
    if base_url:
        options["base_url"] = base_url
    if api_key:
        options["api_key"] = api_key

    def make_source() -> Any:
        source = klaviyo_source(**options)
        if args.resources:
            requested = [name.strip() for name in args.resources.split(",") if name.strip()]
            source = source.with_resources(*selected_resources(source, requested, options["extra_metrics"]))
        return source

    make_source()  # an unknown table or option fails before the pipeline is touched
    # `dlt init klaviyo <destination>` writes the destination you pick here
    default_name = f"klaviyo_{account}" if account else ("klaviyo_demo" if args.demo else "klaviyo")
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name or default_name,
        pipelines_dir=str(Path.cwd() / PIPELINES_DIR),
        destination="duckdb",
        dataset_name=f"{args.dataset}_{account}" if account else args.dataset,
        progress=CompactProgress(sys.stdout),
    )
    started, requests_before = time.monotonic(), PROCESS_STATS.snapshot()
    run_options: Dict[str, Any] = {"loader_file_format": fastest_file_format(pipeline)}
    if args.demo:  # the demo account is made anew each time, so the demo always loads it whole
        run_options["refresh"] = "drop_sources"
    elif args.full_refresh:  # only the selected tables (and their state) when --resources names them
        run_options["refresh"] = "drop_resources" if args.resources else "drop_sources"
    counts: Dict[str, int] = {}
    with exclusive_run(pipeline):
        try:
            # an end date keeps no state, so that range loads in one run
            runs = 1 if args.end_date else 10_000
            infos = load_history(
                pipeline,
                make_source,
                progress=print,
                max_runs=runs,
                after_each_run=lambda: add_row_counts(counts, pipeline),
                **run_options,
            )
        except Exception as exc:
            raise RunFailed(f"{failure_line(exc)} {what_was_kept(pipeline)}") from None
    requests = {k: v - requests_before[k] for k, v in PROCESS_STATS.snapshot().items()}
    print_summary(
        pipeline, counts, time.monotonic() - started, requests, infos[-1].destination_displayable_credentials
    )


def add_row_counts(counts: Dict[str, int], pipeline: dlt.Pipeline) -> None:
    trace = pipeline.last_trace
    for table, rows in (
        trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    ).items():
        counts[table] = counts.get(table, 0) + rows


def what_was_kept(pipeline: dlt.Pipeline) -> str:
    """What a failed run kept and what the next run does, from the pipeline's own record."""
    if pipeline.has_pending_data:
        return "Kept: this run's extracted data, in the pipeline's folder; the next run loads it first, then continues."
    left = "; ".join(backlog(pipeline).values())
    return (
        f"Kept: what earlier runs loaded{f' (history so far: {left})' if left else ''}, not this run's"
        " unloaded chunks; the next run continues from there."
    )


def selected_resources(source: Any, requested: List[str], extra_metrics: Sequence[str]) -> List[str]:
    """The tables to load: those asked for plus the extra metrics' own (asking for both is redundant).

    An unknown name fails before any request, with the sorted list and the closest names.
    """
    extra_tables = list(metric_tables_for(extra_metrics))
    available = sorted(source.resources)
    unknown = [name for name in requested if name not in source.resources]
    if unknown:
        lines = []
        for name in unknown:
            close = difflib.get_close_matches(name, available, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else "no similar table"
            lines.append(f"  {name}: {hint}")
        raise SystemExit(
            "Unknown --resources:\n" + "\n".join(lines) + "\nA metric's own table needs the metric's name"
            " in --extra-metrics (e.g. --extra-metrics 'Placed Order' gives placed_order).\n"
            f"Tables: {', '.join(available)}"
        )
    return list(dict.fromkeys([*requested, *extra_tables]))


def load_accounts(
    args: argparse.Namespace, accounts: Mapping[str, Tuple[Optional[str], str]]
) -> Dict[str, str]:
    """Loads each account (name -> (base_url or None, api_key)); returns the failures by name."""
    failures: Dict[str, str] = {}
    for name, (base_url, api_key) in accounts.items():
        print(f"\n=== account {name}")
        try:
            load(args, base_url, api_key, account=name)
        except Exception as exc:  # one account's failure must not stop the others
            failures[name] = failure_line(exc)
            print(f"account {name!r} failed: {failures[name]}", file=sys.stderr)
    return failures


def fastest_file_format(pipeline: dlt.Pipeline) -> Optional[str]:
    """Parquet where the destination takes it and pyarrow is installed: into DuckDB it loaded
    150k events 5x faster than dlt's default insert_values (benchmarks/load_benchmark.py)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    formats = pipeline.destination.capabilities().supported_loader_file_formats
    return "parquet" if "parquet" in formats else None


@contextlib.contextmanager
def exclusive_run(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Holds a lock file next to the pipeline for the run, so a second run of the same pipeline fails
    at once saying so (dlt has no such lock: the second run fails later on the first one's load
    package). The operating system releases the lock when the process ends, even when killed."""
    path = Path(pipeline.pipelines_dir) / f".{pipeline.pipeline_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            _lock_file(lock)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RunInProgress(
                f"another run holds pipeline {pipeline.pipeline_name!r} ({holder}): wait for it to finish"
                " or stop it, then run again"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, started {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        lock.flush()
        yield


def _lock_file(file: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


class CompactProgress(LogCollector):
    """dlt's progress in one line per step: rewritten in place on a terminal, a line every few
    seconds elsewhere (dlt's own log collector prints a block per table every second)."""

    def __init__(self, stream: TextIO) -> None:
        self.terminal = stream.isatty()
        super().__init__(log_period=0.5 if self.terminal else 10.0, logger=stream, dump_system_stats=False)
        self.stream = stream

    def dump_counters(self) -> None:
        elapsed = self._clock() - min(
            (i.start_time for i in self.counter_info.values()), default=self._clock()
        )
        step = (self.step or "").split(" in ")[0]  # "Normalize klaviyo in <load id>" -> "Normalize klaviyo"
        parts = []
        tables, rows = 0, 0
        for key, count in self.counters.items():
            info = self.counter_info[key]
            if info.total:  # dlt's step counter: resources, files or jobs done of all
                parts.append(f"{info.description} {count:,}/{info.total:,}")
            elif not key.startswith("_dlt"):
                tables, rows = tables + 1, rows + count
        if tables:
            parts.append(f"{rows:,} rows in {tables} tables")
        line = f"{step}: {', '.join(parts)} ({elapsed:.0f} s)"
        if self.terminal:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + line[:width].ljust(width))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _stop(self) -> None:
        super()._stop()
        if self.terminal:
            self.stream.write("\n")


def failure_line(exc: BaseException) -> str:
    """The one sentence that explains a failed run: the innermost cause, with the step it broke."""
    step = getattr(exc, "step", None)
    cause: BaseException = exc
    while True:
        inner = getattr(cause, "exception", None) or cause.__cause__
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    message = " ".join(str(cause).split()) or type(cause).__name__
    if "Could not set lock on file" in message:
        message = (
            "the DuckDB file is open in another process (another pipeline run, a DuckDB shell or"
            f" `dlt pipeline ... show`): close it or give each pipeline its own file ({message})"
        )
    return f"{'the run failed in ' + step + ': ' if step else ''}{message}"


def print_summary(
    pipeline: dlt.Pipeline,
    counts: Mapping[str, int],
    seconds: float,
    requests: Mapping[str, float],
    location: str = "",
) -> None:
    rows = sum(n for table, n in counts.items() if not table.startswith("_dlt"))
    print(
        f"\nLoaded {rows:,} rows into {location.removeprefix('duckdb:///')}, dataset"
        f" {pipeline.dataset_name}, in {seconds:.1f} s with {requests['requests']:,.0f} requests to Klaviyo;"
        f" {requests['throttled']:,.0f} answered 429 ({requests['throttle_wait']:.1f} s waited),"
        f" {requests['retried']:,.0f} retried after errors, {requests['limiter_wait']:.1f} s held by"
        " the rate limiter. Rows per table:"
    )
    for table, rows in sorted(counts.items()):
        if not table.startswith("_dlt"):
            print(f"  {table:<40} {rows:>10,} rows")


def main(argv: Optional[List[str]] = None) -> None:
    """The script: a failed run prints one line naming the cause and exits 1 (`run` raises instead)."""
    try:
        run(argv)
    except (Exception, KeyboardInterrupt) as exc:
        print(f"klaviyo_pipeline.py: {failure_line(exc)}", file=sys.stderr)
        raise SystemExit(1) from None


def run(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.demo:
        with demo_account() as (base_url, api_key):
            load(args, base_url, api_key)
    elif args.accounts:
        names = [name.strip() for name in args.accounts.split(",") if name.strip()]
        keys = {name: (None, str(dlt.secrets[f"sources.klaviyo.accounts.{name}"])) for name in names}
        failures = load_accounts(args, keys)
        if failures:
            raise SystemExit(f"accounts that failed: {', '.join(sorted(failures))}")
    else:
        load(args)


if __name__ == "__main__":
    main()
