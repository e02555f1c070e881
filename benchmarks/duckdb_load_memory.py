"""What DuckDB itself holds while dlt loads one chunk of the source's events.

The default path's peak RSS is reached in the load step (see load_benchmark.py's peak-RSS section).
This separates DuckDB's share from the source's: the source extracts and normalizes one chunk of
events from the emulator once (the real load package: the events table's parquet, merge on `id`),
and then each DuckDB configuration loads a copy of that package with dlt's own loader
(`pipeline.load()`: staging insert, then the deduplicating `delete-insert` merge) in a fresh
process that has done nothing else: no read threads, no pages, no extraction heap. It prints, per
configuration, the process's VmRSS before the load and its highest VmRSS during it, the load's
time and rows/s, and ÷ the issue's 300 MB target and ÷ Klaviyo's 58,333 events/s.

Usage::

    python benchmarks/duckdb_load_memory.py                 # 500,000 events (the default chunk_rows)
    python benchmarks/duckdb_load_memory.py --events 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import dlt  # noqa: E402
import load_benchmark as lb  # noqa: E402  (the emulator process, pipelines and RSS sampling)

from klaviyo.settings import DEFAULT_CHUNK_ROWS  # noqa: E402

PIPELINE = "duckdb_load_memory"
CONFIGS: Dict[str, Optional[Dict[str, Any]]] = {
    "DuckDB's defaults (memory_limit 80% of RAM)": None,
    "threads 1": {"threads": 1},
    "memory_limit 128MB": {"memory_limit": "128MB"},
    "memory_limit 128MB, threads 1": {"memory_limit": "128MB", "threads": 1},
}


def load_child(home: Path) -> None:
    """In a fresh process: loads the pending package of the pipeline in `home`, sampling VmRSS."""
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE,
        pipelines_dir=str(home / "pipelines"),
        destination=dlt.destinations.duckdb(str(home / f"{PIPELINE}.duckdb")),
        dataset_name="bench",
    )
    before_kb = lb.proc_status_kb("VmRSS")
    sampler = lb.RssSampler(interval_s=0.005)
    sampler.phase = "load"
    with sampler:
        started = time.perf_counter()
        pipeline.load()
        seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM events")[0][0]
    peak = sampler.peaks["load"]
    result = {"before_kb": before_kb, "peak_kb": peak["rss_kb"], "seconds": seconds, "rows": rows}
    print("RSS_RESULT " + json.dumps(result), flush=True)


def prepare(events: int, workdir: Path) -> Path:
    """Extracts and normalizes `events` events of the emulator into a pipeline, without loading."""
    args = lb.parse_args([])
    with lb.EmulatorProcess(args, events=events) as emulator:
        pipeline = lb.new_pipeline(workdir, PIPELINE)
        source = lb.klaviyo_source(api_key=lb.API_KEY, base_url=emulator.base_url)
        pipeline.extract(source.with_resources("events"))
        pipeline.normalize()
    return workdir / PIPELINE


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=DEFAULT_CHUNK_ROWS, help="events in the chunk")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        load_child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="duckdb_load_memory_") as tmp:
        workdir = Path(tmp)
        lb.log(f"extracting and normalizing {args.events:,} events once ...")
        package = prepare(args.events, workdir)
        parquet = sum(f.stat().st_size for f in package.rglob("*.parquet"))
        lines: List[str] = []
        for label, config in CONFIGS.items():
            home = workdir / "load"
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(package, home)
            env = dict(os.environ)
            env.pop("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", None)
            if config is not None:
                env["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = json.dumps(config)
            result = lb.child_result([sys.executable, __file__, "--child", str(home)], env)
            before, peak = result["before_kb"] / 1024, result["peak_kb"] / 1024
            rate = result["rows"] / result["seconds"]
            lines.append(
                f"  {label:<45} before {before:5.0f} MiB, peak {peak:5.0f} MiB (+{peak - before:4.0f};"
                f" {peak * 1024 * 1024 / (lb.TARGET_PEAK_MB * 1e6):4.2f} x the {lb.TARGET_PEAK_MB} MB target),"
                f" load {result['seconds']:4.1f} s = {rate:7,.0f} rows/s ({rate / lb.KLAVIYO_EVENTS_PER_S:4.2f} x"
                f" {lb.KLAVIYO_EVENTS_PER_S:,.0f}/s), {result['rows']:,} rows"
            )
    print("=" * 110)
    print(
        f"dlt loading one chunk of {args.events:,} events (the source's package: parquet {parquet / 1e6:.0f} MB)"
        " into an empty DuckDB, each in a fresh process that has done nothing else"
    )
    print("\n".join(lines))
    print("  (peak = highest VmRSS sampled every 5 ms during pipeline.load(); before = VmRSS after imports)")
    print("=" * 110)


if __name__ == "__main__":
    main()
