"""Chunked history against one big run: a first load of an emulated account, both ways.

Prints, for the source's default tables:

* one big run (`chunk_rows` larger than any table): the time until its rows are committed, which
  is also the time until anything at all is committed;
* the chunked load (`klaviyo.history.load_history`, one committed chunk per table per run): the
  time to the first committed chunk, the total, the number of runs, and the overhead of chunking
  (chunked total / big run - 1; target <= 10%);
* requests to the emulator of each, and rows loaded (they must be equal).

The two loads alternate (big, chunked, big, chunked, ...) and the ratios are taken pair by pair,
so a machine whose speed drifts still compares like with like; medians are printed.

    python benchmarks/history_benchmark.py                  # 150k events, chunks of 30k, 3 pairs
    python benchmarks/history_benchmark.py --events 40000 --chunk-rows 8000 --pairs 1
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
from typing import Any, Dict, List, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import dlt  # noqa: E402

from klaviyo import klaviyo_source  # noqa: E402
from klaviyo.history import load_history  # noqa: E402
from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator  # noqa: E402

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


def one_load(emu: Any, work: Path, chunk_rows: int) -> Dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    pipeline = dlt.pipeline(
        pipeline_name="history_bench",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.duckdb(str(work / "bench.duckdb")),
        dataset_name="klaviyo_data",
    )
    requests_before = len(emu.request_log)
    started = time.perf_counter()
    committed: List[float] = []

    def source() -> Any:
        return klaviyo_source(api_key=emu.api_key, base_url=emu.base_url, chunk_rows=chunk_rows)

    load_history(
        pipeline,
        source,
        progress=lambda line: None,
        after_each_run=lambda: committed.append(time.perf_counter() - started),
        loader_file_format="parquet",
    )
    return {
        "first": committed[0],
        "total": committed[-1],
        "runs": len(committed),
        "requests": len(emu.request_log) - requests_before,
        "rows": rows_in(pipeline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--profiles", type=int, default=5_000)
    parser.add_argument("--chunk-rows", type=int, default=30_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument(
        "--only",
        choices=["big", "chunked"],
        help="one load of one kind (to time whole processes against each other)",
    )
    args = parser.parse_args()
    account = AccountSpec(seed=7, profiles=args.profiles, events=args.events)
    # Klaviyo's own per-endpoint rate limits, and a network round trip per request
    config = EmulatorConfig(account=account, rate_limit_scale=1.0, latency_ms=args.latency_ms)
    pairs: List[Tuple[Dict[str, float], Dict[str, float]]] = []
    with run_emulator(config) as emu, tempfile.TemporaryDirectory() as folder:
        print(
            f"account: {args.events:,} events, {args.profiles:,} profiles; default tables;"
            f" chunk_rows {args.chunk_rows:,}; {args.latency_ms:.0f} ms per request; Klaviyo's rate limits"
        )
        if args.only:
            figures = one_load(emu, Path(folder) / args.only, BIG if args.only == "big" else args.chunk_rows)
            print(f"{args.only}: {figures}")
            return
        for index in range(args.pairs):
            big = one_load(emu, Path(folder) / "big", BIG)
            chunked = one_load(emu, Path(folder) / "chunked", args.chunk_rows)
            pairs.append((big, chunked))
            print(
                f"pair {index + 1}: one run {big['total']:.1f} s ({big['requests']:,.0f} requests);"
                f" chunked {chunked['total']:.1f} s in {chunked['runs']:.0f} runs"
                f" ({chunked['requests']:,.0f} requests), first chunk committed after {chunked['first']:.1f} s"
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
