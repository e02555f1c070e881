"""Chunked history against one big run: a first load of an emulated account, both ways.

Prints, for the source's default tables, each load a bare `pipeline.run` (no loader_file_format)
into a fresh DuckDB file, with the emulator in a process of its own (as in load_benchmark.py):

* one big run (`chunk_rows` larger than any table): the time until its rows are committed, which
  is also the time until anything at all is committed;
* the chunked load (`klaviyo.history.load_history`, one committed chunk per table per run, the
  source's default `chunk_rows` unless `--chunk-rows` is given): the time to the first committed
  chunk, the total, the number of runs, and the overhead of chunking (chunked total / big run - 1;
  target <= 10%);
* requests of each (the source clients' own counts), and rows loaded (they must be equal).

The two loads alternate (big, chunked, big, chunked, ...) and the ratios are taken pair by pair,
so a machine whose speed drifts still compares like with like; medians are printed. An untimed
load first fills the emulator's cache of event JSON (as load_benchmark.py's warm-up does).

    python benchmarks/history_benchmark.py      # 1.5M events, default chunk_rows (500k), 2 pairs: ~10 min
    python benchmarks/history_benchmark.py --events 150000 --chunk-rows 30000 --pairs 3
    python benchmarks/history_benchmark.py --only chunked   # one load, e.g. to time whole processes
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import dlt  # noqa: E402
from load_benchmark import API_KEY, EmulatorProcess, capture_clients  # noqa: E402

from klaviyo import klaviyo_source  # noqa: E402
from klaviyo.history import load_history  # noqa: E402
from klaviyo.settings import DEFAULT_CHUNK_ROWS  # noqa: E402

BIG = 10**12  # a chunk larger than any table: one run loads everything


def rows_in(pipeline: dlt.Pipeline) -> int:
    with pipeline.sql_client() as client:
        tables = [
            row[0]
            for row in client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s",
                pipeline.dataset_name,
            )
            if not row[0].startswith("_dlt")
        ]
        return sum(client.execute_sql(f"select count(*) from {name}")[0][0] for name in tables)


def one_load(base_url: str, work: Path, chunk_rows: Optional[int]) -> Dict[str, float]:
    """A first load into a fresh DuckDB file; chunk_rows None: the source's default."""
    shutil.rmtree(work, ignore_errors=True)
    pipeline = dlt.pipeline(
        pipeline_name="history_bench",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(work / "bench.duckdb")),
        dataset_name="klaviyo_data",
    )
    options = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    committed: List[float] = []
    with capture_clients() as clients:
        started = time.perf_counter()
        load_history(
            pipeline,
            lambda: klaviyo_source(api_key=API_KEY, base_url=base_url, **options),
            progress=lambda line: None,
            after_each_run=lambda: committed.append(time.perf_counter() - started),
        )
    return {
        "first": committed[0],
        "total": committed[-1],
        "runs": len(committed),
        "requests": sum(client.stats.requests for client in clients),
        "throttled": sum(client.stats.throttled for client in clients),
        "rows": rows_in(pipeline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--profiles", type=int, default=5_000)
    parser.add_argument(
        "--chunk-rows", type=int, help=f"rows per chunk (default: the source's own, {DEFAULT_CHUNK_ROWS:,})"
    )
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=80.0, help="emulator latency per request")
    parser.add_argument("--latency-per-record-ms", type=float, default=0.02)
    parser.add_argument(
        "--only",
        choices=["big", "chunked"],
        help="one load of one kind (to time whole processes against each other)",
    )
    args = parser.parse_args()
    # what EmulatorProcess reads: Klaviyo's own rate limits, a round trip per request
    emulator_args = argparse.Namespace(
        latency_ms=args.latency_ms,
        latency_per_record_ms=args.latency_per_record_ms,
        events=args.events,
        profiles=args.profiles,
        list_members=1_000,
        seed=7,
    )
    chunk_label = f"{args.chunk_rows:,}" if args.chunk_rows else f"{DEFAULT_CHUNK_ROWS:,} (the default)"
    pairs: List[Tuple[Dict[str, float], Dict[str, float]]] = []
    with EmulatorProcess(emulator_args) as emu, tempfile.TemporaryDirectory() as folder:
        print(
            f"account: {args.events:,} events, {args.profiles:,} profiles; default tables; chunk_rows"
            f" {chunk_label}; {args.latency_ms:.0f} ms per request; Klaviyo's rate limits; emulator"
            f" in its own process (built in {emu.startup_s:.0f} s); bare pipeline.run into DuckDB",
            flush=True,
        )
        # the emulator caches each event's JSON per query shape (each metric's table, `events`)
        warm = one_load(emu.base_url, Path(folder) / "warm", BIG)
        print(f"warm-up: one untimed load of the default tables, {warm['total']:.1f} s", flush=True)
        if args.only:
            figures = one_load(
                emu.base_url, Path(folder) / args.only, BIG if args.only == "big" else args.chunk_rows
            )
            print(f"{args.only}: {figures}")
            return
        for index in range(args.pairs):
            big = one_load(emu.base_url, Path(folder) / "big", BIG)
            chunked = one_load(emu.base_url, Path(folder) / "chunked", args.chunk_rows)
            pairs.append((big, chunked))
            print(
                f"pair {index + 1}: one run {big['total']:.1f} s ({big['requests']:,.0f} requests,"
                f" {big['throttled']:.0f} x 429); chunked {chunked['total']:.1f} s in {chunked['runs']:.0f} runs"
                f" ({chunked['requests']:,.0f} requests, {chunked['throttled']:.0f} x 429), first chunk"
                f" committed after {chunked['first']:.1f} s",
                flush=True,
            )
            assert big["rows"] == chunked["rows"], (big["rows"], chunked["rows"])
    overhead = statistics.median(c["total"] / b["total"] - 1 for b, c in pairs)
    first = statistics.median(c["first"] / b["total"] for b, c in pairs)
    extra_requests = statistics.median(c["requests"] / b["requests"] - 1 for b, c in pairs)
    big_total = statistics.median(b["total"] for b, _ in pairs)
    chunked_total = statistics.median(c["total"] for _, c in pairs)
    print(f"\nrows loaded, both ways: {pairs[0][0]['rows']:,.0f}")
    print(f"one big run: {big_total:.1f} s until anything is committed (median)")
    print(
        f"chunked: first chunk committed after {statistics.median(c['first'] for _, c in pairs):.1f} s"
        f" = {first:.2f} x the big run's time to its first commit; all in {chunked_total:.1f} s"
    )
    print(
        f"overhead of chunking: {overhead:+.1%} time (target <= +10%), {extra_requests:+.1%} requests"
        " (median of the pairs' ratios)"
    )


if __name__ == "__main__":
    main()
