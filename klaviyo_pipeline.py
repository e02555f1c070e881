"""Loads a Klaviyo account into a dlt destination (DuckDB `klaviyo.duckdb` by default).

python klaviyo_pipeline.py                      # the account whose key is in .dlt/secrets.toml
python klaviyo_pipeline.py --demo               # a local emulated account, no Klaviyo key needed
python klaviyo_pipeline.py --start-date 2024-01-01 --resources profiles,click
python klaviyo_pipeline.py --full-refresh       # drop what was loaded and load it all again
python klaviyo_pipeline.py --accounts brand_a,brand_b   # keys in [sources.klaviyo.accounts]

Several accounts load one after the other, each with its own pipeline (`klaviyo_<account>`),
state and dataset (`klaviyo_data_<account>`), so one account's failure is reported by name and
leaves the others untouched.
"""

import argparse
import contextlib
import difflib
import sys
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import dlt

from klaviyo import klaviyo_source, metric_tables_for
from klaviyo.client import PROCESS_STATS


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load a Klaviyo account with dlt.")
    parser.add_argument("--demo", action="store_true", help="load a local emulated Klaviyo account")
    parser.add_argument("--start-date", help="load data from this date on (ISO 8601); default all history")
    parser.add_argument("--end-date", help="load data before this date (backfills; state is not moved)")
    parser.add_argument("--resources", help="comma-separated tables to load; default all selected ones")
    parser.add_argument("--extra-metrics", help="comma-separated metric names to load into own tables")
    parser.add_argument("--dataset", default="klaviyo_data", help="dataset (schema) name")
    parser.add_argument("--pipeline-name", help="default: klaviyo, or klaviyo_demo with --demo")
    parser.add_argument("--full-refresh", action="store_true", help="drop loaded tables and state first")
    parser.add_argument(
        "--accounts",
        help="comma-separated account names whose keys are in .dlt/secrets.toml [sources.klaviyo.accounts]",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def demo_account() -> Iterator[Tuple[str, str]]:
    """Starts the local Klaviyo emulator; only the demo needs it, so it is imported here."""
    try:
        from klaviyo_emulator import EmulatorConfig, run_emulator
    except ImportError:
        raise SystemExit("--demo needs the klaviyo_emulator package from the source repository") from None
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
    source = klaviyo_source(**options)
    if args.resources:
        requested = [name.strip() for name in args.resources.split(",") if name.strip()]
        source = source.with_resources(*selected_resources(source, requested, options["extra_metrics"]))
    # `dlt init klaviyo <destination>` writes the destination you pick here
    default_name = f"klaviyo_{account}" if account else ("klaviyo_demo" if args.demo else "klaviyo")
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name or default_name,
        destination="duckdb",
        dataset_name=f"{args.dataset}_{account}" if account else args.dataset,
        progress="log",
    )
    started, requests_before = time.monotonic(), PROCESS_STATS.snapshot()
    run_options: Dict[str, Any] = {"loader_file_format": fastest_file_format(pipeline)}
    # the demo account is made anew each time, so the demo always loads it whole
    if args.full_refresh or args.demo:
        run_options["refresh"] = "drop_sources"
    info = pipeline.run(source, **run_options)
    print(info)
    requests = {k: v - requests_before[k] for k, v in PROCESS_STATS.snapshot().items()}
    print_summary(pipeline, time.monotonic() - started, requests)


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
            failures[name] = str(exc)
            print(f"account {name!r} failed: {exc}", file=sys.stderr)
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


def print_summary(pipeline: dlt.Pipeline, seconds: float, requests: Mapping[str, float]) -> None:
    trace = pipeline.last_trace
    counts = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    print(
        f"\nLoaded in {seconds:.1f} s with {requests['requests']:,.0f} requests to Klaviyo;"
        f" {requests['throttled']:,.0f} answered 429 ({requests['throttle_wait']:.1f} s waited),"
        f" {requests['retried']:,.0f} retried after errors, {requests['limiter_wait']:.1f} s held by"
        " the rate limiter. Rows per table:"
    )
    for table, rows in sorted(counts.items()):
        if not table.startswith("_dlt"):
            print(f"  {table:<40} {rows:>10,} rows")


def main(argv: Optional[List[str]] = None) -> None:
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
