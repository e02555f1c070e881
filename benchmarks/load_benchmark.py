"""End-to-end load benchmark of the Klaviyo dlt source against the local emulator.

The emulator runs in its own process (``python -m klaviyo_emulator``) with Klaviyo's real
per-endpoint rate limits, a fixed latency per request plus a little per returned record, and an
account of the requested size. This process runs the dlt pipelines into fresh DuckDB files and
prints:

* events (``.with_resources("events")``): rows/s end to end, with the extract / normalize / load split;
* the local floor: the very same event rows loaded by dlt from memory, and source ÷ floor;
* profiles and list_members (rate-bound, 750 requests/min): requests/s ÷ 12.5/s and the 429 share;
* all of the above again with ``workers=1``;
* peak RSS of a fresh process loading two different numbers of events;
* DuckDB loading of the in-memory rows with ``insert_values``, ``jsonl`` and ``parquet``.

Usage::

    python benchmarks/load_benchmark.py            # full run, under ~10 minutes on 2 cores
    python benchmarks/load_benchmark.py --quick    # ~1 minute
    python benchmarks/load_benchmark.py --events 150000 --profiles 20000 --list-members 20000 \
        --latency-ms 80 --workers 4
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# No telemetry (there is no internet here) and no progress chatter, whatever the working directory.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

import dlt  # noqa: E402
import requests  # noqa: E402

import klaviyo  # noqa: E402
from klaviyo import klaviyo_source, to_row  # noqa: E402
from klaviyo.client import KlaviyoClient, RequestStats  # noqa: E402
from klaviyo.settings import ENDPOINTS, TABLE_COLUMNS  # noqa: E402

API_KEY = "pk_emulator_test_key_0000000000000000"
REVISION = "2026-07-15"
STEADY_PER_S = ENDPOINTS["profiles"].steady_per_minute / 60.0  # 750/min = 12.5/s
Rows = List[Dict[str, Any]]


# --------------------------------------------------------------------------- emulator process


class EmulatorProcess:
    """``python -m klaviyo_emulator`` in a subprocess on a free port; stopped on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "klaviyo_emulator",
            "--port",
            "0",  # the emulator binds a free port itself and prints it: no race with another process
            "--api-key",
            API_KEY,
            "--rate-limit-scale",
            "1",
            "--latency-ms",
            str(args.latency_ms),
            "--latency-per-record-ms",
            str(args.latency_per_record_ms),
            "--events",
            str(args.events),
            "--profiles",
            str(args.profiles),
            "--large-list-members",
            str(args.list_members),
            "--seed",
            str(args.seed),
        ]
        self.proc: Optional[subprocess.Popen[str]] = None
        self.base_url = ""
        self.startup_s = 0.0

    def __enter__(self) -> EmulatorProcess:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        seen: List[str] = []
        for line in self.proc.stdout:  # blocks until the account is built and the socket listens
            seen.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.base_url = match.group(1)
                break
        if not self.base_url:
            raise RuntimeError("emulator did not start:\n" + "".join(seen))
        # keep draining its output so it can never block on a full pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:  # answers? (no key: a 401 comes before the rate limiter, so no quota is used)
            try:
                if requests.get(f"{self.base_url}/profiles", timeout=5).status_code == 401:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("emulator does not answer")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class QuotaGuard:
    """Keeps consecutive runs from sharing the emulator's per-minute window.

    Every source run starts a fresh client whose limiter knows nothing of earlier runs, while the
    emulator counts fixed minute windows per endpoint. Before a run, wait until the requests made in
    the last 61 s plus the run's own estimate fit in the steady limit, so no run inherits 429s.
    """

    def __init__(self) -> None:
        self.history: Dict[str, List[Tuple[float, int]]] = {}

    def wait(self, endpoint: str, expected: int) -> float:
        limit = ENDPOINTS[endpoint].steady_per_minute
        waited = 0.0
        while True:
            now = time.monotonic()
            recent = [(t, n) for t, n in self.history.get(endpoint, []) if t > now - 61.5]
            self.history[endpoint] = recent
            if not recent or sum(n for _, n in recent) + expected <= limit * 0.95:
                return waited
            pause = recent[0][0] + 61.5 - now
            log(f"  waiting {pause:.0f} s for the emulator's {endpoint} minute window to pass")
            time.sleep(pause)
            waited += pause

    def record(self, endpoint: str, requests_made: int) -> None:
        self.history.setdefault(endpoint, []).append((time.monotonic(), requests_made))


# --------------------------------------------------------------------------- dlt helpers


@dataclass
class Run:
    label: str
    rows: int
    extract_s: float
    normalize_s: float
    load_s: float
    stats: Optional[RequestStats] = None
    tables: Dict[str, Tuple[int, int, int]] = field(default_factory=dict)  # rows, columns, hash

    @property
    def total_s(self) -> float:
        return self.extract_s + self.normalize_s + self.load_s


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def new_pipeline(workdir: Path, name: str) -> dlt.Pipeline:
    """A pipeline with its own pipelines_dir and a fresh DuckDB file."""
    home = workdir / name
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(home / "pipelines"),
        destination=dlt.destinations.duckdb(str(home / f"{name}.duckdb")),
        dataset_name="bench",
    )


@contextlib.contextmanager
def capture_clients() -> Iterator[List[KlaviyoClient]]:
    """Records the KlaviyoClient a source creates, to read its RequestStats after the run.

    `klaviyo_source` looks `KlaviyoClient` up in the `klaviyo` module when called; a recording
    subclass is put there for the duration and the original restored afterwards.
    """
    made: List[KlaviyoClient] = []

    class Recording(KlaviyoClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    original = klaviyo.KlaviyoClient
    klaviyo.KlaviyoClient = Recording  # type: ignore[misc]
    try:
        yield made
    finally:
        klaviyo.KlaviyoClient = original  # type: ignore[misc]


def fingerprints(pipeline: dlt.Pipeline) -> Dict[str, Tuple[int, int, int]]:
    """Per loaded table: rows, data columns, and an order-independent hash of the data columns."""
    out: Dict[str, Tuple[int, int, int]] = {}
    with pipeline.sql_client() as client:
        dataset = client.dataset_name
        tables = client.execute_sql(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'"
            " AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'"
        )
        for (table,) in tables:
            columns = client.execute_sql(
                "SELECT column_name FROM information_schema.columns"
                f" WHERE table_schema = '{dataset}' AND table_name = '{table}'"
            )
            data = sorted(c for (c,) in columns if not c.startswith("_dlt"))
            names = ", ".join(client.escape_column_name(c) for c in data)
            qualified = client.make_qualified_table_name(table)
            rows, digest = client.execute_sql(f"SELECT count(*), bit_xor(hash({names})) FROM {qualified}")[0]
            out[table] = (int(rows), len(data), int(digest or 0))
    return out


def timed_load(
    pipeline: dlt.Pipeline,
    data: Any,
    label: str,
    table: str,
    loader_file_format: Optional[str] = None,
    profile_to: Optional[Path] = None,
) -> Run:
    """extract, normalize and load, each timed; the sum is the run's wall time."""
    profiler = cProfile.Profile() if profile_to else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    if loader_file_format:
        pipeline.extract(data, loader_file_format=loader_file_format)  # type: ignore[arg-type]
    else:
        pipeline.extract(data)
    t1 = time.perf_counter()
    pipeline.normalize()
    t2 = time.perf_counter()
    pipeline.load(raise_on_failed_jobs=True)
    t3 = time.perf_counter()
    if profiler and profile_to:
        profiler.disable()
        profiler.dump_stats(str(profile_to))
    tables = fingerprints(pipeline)
    rows = tables.get(table, (0, 0, 0))[0]
    return Run(label, rows, t1 - t0, t2 - t1, t3 - t2, tables=tables)


def source_run(
    workdir: Path,
    base_url: str,
    resource_name: str,
    workers: int,
    profile_to: Optional[Path] = None,
    start_date: Optional[str] = None,
) -> Run:
    with capture_clients() as clients:
        source = klaviyo_source(api_key=API_KEY, base_url=base_url, workers=workers, start_date=start_date)
    source = source.with_resources(resource_name)
    pipeline = new_pipeline(workdir, f"src_{resource_name}_w{workers}")
    run = timed_load(pipeline, source, f"{resource_name} w={workers}", resource_name, profile_to=profile_to)
    run.stats = clients[0].stats if clients else None
    return run


def memory_resource(pages: Sequence[Rows]) -> Any:
    # the same primary key, disposition and typed columns as the source's `events` resource, and the
    # same pages of 1000 rows; no incremental, no HTTP: what dlt itself costs for these rows
    @dlt.resource(name="events", primary_key="id", write_disposition="merge", columns=TABLE_COLUMNS["events"])
    def events() -> Iterator[Rows]:
        yield from pages

    return events()


# --------------------------------------------------------------------------- floor rows


def fetch_event_pages(base_url: str) -> List[Rows]:
    """Every event, read from the emulator once (not timed) and shaped by the source's own `to_row`.

    Why this is the fair floor: these are the very dicts the source yields (same `to_row`, same
    `datetime` cursor parsed to a datetime, nested `event_properties` kept nested, same pages of
    1000), so the floor differs from the source run only by HTTP, JSON decoding, threading and the
    incremental. Reading rows back from DuckDB would give flattened, re-typed rows, i.e. a different
    workload; capturing them in the source run would distort that run's memory and time.
    """
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Klaviyo-API-Key {API_KEY}", "revision": REVISION, "Accept": "application/json"}
    )
    url: Optional[str] = f"{base_url}/events?page%5Bsize%5D=1000&sort=datetime"
    pages: List[Rows] = []
    while url:
        response = session.get(url, timeout=60)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        document = response.json()
        pages.append([to_row(item, "datetime") for item in document["data"]])
        url = document["links"].get("next")
    return pages


# --------------------------------------------------------------------------- RSS child


def rss_child(base_url: str, workers: int, start_date: Optional[str], workdir: Path) -> None:
    """Runs in a fresh process: loads the events from `start_date` on and reports peak RSS."""
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = source_run(workdir, base_url, "events", workers, start_date=start_date)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"rows": run.rows, "seconds": run.total_s, "baseline_kb": baseline_kb, "peak_kb": peak_kb}
    print("RSS_RESULT " + json.dumps(result), flush=True)


def measure_rss(base_url: str, workers: int, start_date: Optional[str], workdir: Path) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--rss-child", "--base-url", base_url, "--workers", str(workers)]
    cmd += ["--workdir", str(workdir)]
    if start_date:
        cmd += ["--start-date", start_date]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RSS_RESULT "):
            return dict(json.loads(line[len("RSS_RESULT ") :]))
    raise RuntimeError(f"RSS child failed:\n{done.stdout}\n{done.stderr}")


# --------------------------------------------------------------------------- reporting


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import duckdb

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"nproc {cpus}, {model}; Python {platform.python_version()}, dlt {dlt.__version__},"
        f" duckdb {duckdb.__version__}, {platform.system()} {platform.release()}"
    )


def phases(run: Run) -> str:
    return f"extract {run.extract_s:6.1f} s | normalize {run.normalize_s:5.1f} s | load {run.load_s:5.1f} s"


def events_line(run: Run) -> str:
    rate = run.rows / run.total_s if run.total_s else 0.0
    req = ""
    if run.stats:
        req = f" | {run.stats.requests} req, {run.stats.throttled} x 429"
    return (
        f"{run.label:<22} {run.rows:>8,} rows {run.total_s:7.1f} s {rate:>9,.0f} rows/s | {phases(run)}{req}"
    )


def rate_line(run: Run) -> str:
    stats = run.stats or RequestStats()
    req_s = stats.requests / run.extract_s if run.extract_s else 0.0
    share = stats.throttled / stats.requests if stats.requests else 0.0
    return (
        f"{run.label:<22} {run.rows:>8,} rows {stats.requests:>5} req in {run.extract_s:6.1f} s ="
        f" {req_s:5.1f} req/s = {req_s / STEADY_PER_S:4.2f} x 12.5/s | 429: {stats.throttled}"
        f" ({share:.1%}) | limiter held {stats.limiter_wait:5.1f} s | total {run.total_s:5.1f} s"
    )


def top_functions(path: Path, limit: int = 14) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:])


# --------------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small account, ~1 minute")
    p.add_argument("--events", type=int, help="events in the account (default 150000; quick 20000)")
    p.add_argument("--profiles", type=int, help="profiles in the account (default 20000; quick 3000)")
    p.add_argument("--list-members", type=int, help="members of the large list (default 20000; quick 3000)")
    p.add_argument("--latency-ms", type=float, default=80.0, help="emulator latency per request")
    p.add_argument("--latency-per-record-ms", type=float, default=0.02, help="emulator latency per record")
    p.add_argument("--workers", type=int, default=4, help="source workers (compared with workers=1)")
    p.add_argument("--seed", type=int, default=1, help="emulator account seed")
    p.add_argument(
        "--rss-events",
        help="comma-separated event counts for the peak-RSS runs (default 50000,<events>; quick 5000,<events>)",
    )
    p.add_argument("--skip-workers-1", action="store_true", help="do not repeat the runs with workers=1")
    p.add_argument("--cprofile", action="store_true", help="cProfile the events source and floor runs")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the DuckDB files")
    # internal: the peak-RSS child process
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--start-date", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.events = args.events or (20_000 if args.quick else 150_000)
    args.profiles = args.profiles or (3_000 if args.quick else 20_000)
    args.list_members = args.list_members or (3_000 if args.quick else 20_000)
    if args.rss_events:
        args.rss_counts = [int(n) for n in args.rss_events.split(",")]
    else:
        args.rss_counts = [5_000 if args.quick else 50_000, args.events]
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(args.base_url, args.workers, args.start_date, Path(tempfile.mkdtemp(dir=args.workdir)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="klaviyo_bench_"))
    report: List[str] = []
    try:
        with EmulatorProcess(args) as emulator:
            log(
                f"emulator up at {emulator.base_url} after {emulator.startup_s:.1f} s: {' '.join(emulator.cmd[3:])}"
            )
            run_all(args, emulator, workdir, report)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(report))


def run_all(args: argparse.Namespace, emulator: EmulatorProcess, workdir: Path, report: List[str]) -> None:
    base_url = emulator.base_url
    guard = QuotaGuard()

    # warm-up, untimed: first-use imports and caches (duckdb, pyarrow, dlt's writers) for every format
    warm = [
        [{"id": str(i), "datetime": "2024-01-01T00:00:00+00:00", "event_properties": {"a": i}}]
        for i in range(3)
    ]
    for fmt in ("insert_values", "jsonl", "parquet"):
        timed_load(new_pipeline(workdir, f"warmup_{fmt}"), memory_resource(warm), "warm", "events", fmt)

    runs: Dict[str, Run] = {}
    worker_counts = [args.workers] if args.skip_workers_1 or args.workers == 1 else [args.workers, 1]
    expected = {
        "events": ("events", math.ceil(args.events / 1000) + 4 * args.workers + 2),
        "profiles": ("profiles", math.ceil(args.profiles / 100) + 4 * args.workers + 2),
        "list_members": ("list_profiles", math.ceil(args.list_members / 100) + 20),
    }
    for workers in worker_counts:
        for name in ("events", "profiles", "list_members"):
            endpoint, estimate = expected[name]
            guard.wait(endpoint, estimate)
            profile = workdir / f"source_{name}.prof" if args.cprofile and name == "events" else None
            if profile and workers != args.workers:
                profile = None
            log(f"source run: {name}, workers={workers} ...")
            run = source_run(workdir, base_url, name, workers, profile_to=profile)
            guard.record(endpoint, run.stats.requests if run.stats else estimate)
            runs[f"{name}/{workers}"] = run
            log("  " + (events_line(run) if name == "events" else rate_line(run)))

    # the floor: the same rows from memory (fetched now, untimed, after the source runs so that the
    # source runs do not pay for a heap full of rows; frozen so the garbage collector skips them)
    guard.wait("events", math.ceil(args.events / 1000) + 1)
    log("fetching the event rows for the floor (untimed) ...")
    t0 = time.perf_counter()
    pages = fetch_event_pages(base_url)
    guard.record("events", len(pages))
    fetch_s = time.perf_counter() - t0
    gc.collect()
    gc.freeze()
    floor_profile = workdir / "floor.prof" if args.cprofile else None
    log("floor run ...")
    floor = timed_load(
        new_pipeline(workdir, "floor"),
        memory_resource(pages),
        "floor (memory)",
        "events",
        profile_to=floor_profile,
    )
    log("  " + events_line(floor))
    formats: Dict[str, Run] = {}
    for fmt in ("insert_values", "jsonl", "parquet"):
        log(f"format run: {fmt} ...")
        formats[fmt] = timed_load(
            new_pipeline(workdir, f"fmt_{fmt}"), memory_resource(pages), fmt, "events", fmt
        )
        log("  " + events_line(formats[fmt]))
    datetimes = sorted(row["datetime"] for page in pages for row in page)
    del pages
    gc.unfreeze()
    gc.collect()

    # peak RSS in fresh processes: the newest N events via start_date
    rss: List[Tuple[int, Dict[str, Any]]] = []
    for count in args.rss_counts:
        start = None
        if count < len(datetimes):
            start = datetimes[len(datetimes) - count].isoformat()
        guard.wait("events", math.ceil(count / 1000) + 4 * args.workers + 2)
        log(f"peak-RSS child: {count} events (start_date {start}) ...")
        result = measure_rss(base_url, args.workers, start, workdir)
        guard.record("events", math.ceil(count / 1000) + 4 * args.workers + 2)
        rss.append((count, result))
        log(f"  {result}")

    # ------------------------------------------------------------------ the report
    ev = runs[f"events/{args.workers}"]
    report.append("")
    report.append("=" * 100)
    report.append("Klaviyo source load benchmark")
    report.append(f"machine:  {machine()}")
    report.append(
        f"emulator: separate process, {args.events:,} events, {args.profiles:,} profiles, large list of"
        f" {args.list_members:,}; rate limits 1x (real); latency {args.latency_ms:g} ms/request +"
        f" {args.latency_per_record_ms:g} ms/record; account built in {emulator.startup_s:.1f} s"
    )
    report.append("")
    report.append("events (with_resources('events'), merge on id), wall = extract + normalize + load")
    for workers in worker_counts:
        report.append("  " + events_line(runs[f"events/{workers}"]))
    report.append("  " + events_line(floor))
    same = ev.tables.get("events") == floor.tables.get("events")
    report.append(
        f"  floor = the same {floor.rows:,} rows from memory (fetched untimed in {fetch_s:.1f} s; content"
        f" {'identical' if same else 'DIFFERENT'} to the source's table)"
    )
    for workers in worker_counts:
        run = runs[f"events/{workers}"]
        ratio = run.total_s / floor.total_s if floor.total_s else float("inf")
        verdict = "meets" if ratio <= 1.25 else "misses"
        report.append(
            f"  source ÷ floor, workers={workers}: {run.total_s:.1f} s / {floor.total_s:.1f} s = {ratio:.2f}"
            f" ({verdict} the goal of <= 1.25)"
        )
    report.append("")
    report.append(
        "rate-bound endpoints (750 requests/min = 12.5/s steady, 75/s burst); req/s over the extract phase"
    )
    for name in ("profiles", "list_members"):
        for workers in worker_counts:
            report.append("  " + rate_line(runs[f"{name}/{workers}"]))
    longest = max(
        (runs[f"{n}/{w}"].stats or RequestStats()).requests
        for n in ("profiles", "list_members")
        for w in worker_counts
    )
    if longest <= ENDPOINTS["profiles"].steady_per_minute:
        report.append(
            f"  note: at most {longest} requests per run, within one minute's 750: only the 75/s burst limit"
            " applies, so exceeding 12.5/s here is legitimate and says nothing about the steady window;"
            " use --profiles / --list-members >= 100000 for runs where it binds."
        )
    report.append("")
    report.append("DuckDB loader file formats, the same event rows from memory (fresh pipeline each)")
    reference = formats["insert_values"].tables
    for fmt, run in formats.items():
        check = "same tables/rows/content as insert_values" if run.tables == reference else "DIFFERS: "
        if run.tables != reference:
            check += ", ".join(
                f"{t}: {run.tables.get(t)} vs {reference.get(t)}"
                for t in sorted(set(run.tables) | set(reference))
                if run.tables.get(t) != reference.get(t)
            )
        report.append(f"  {fmt:<13} {run.total_s:6.1f} s | {phases(run)} | {check}")
    report.append("")
    report.append(f"peak RSS of a fresh process loading events (workers={args.workers}; ru_maxrss)")
    for count, result in rss:
        report.append(
            f"  {result['rows']:>8,} events (asked {count:,}): peak {result['peak_kb'] / 1024:6.0f} MiB"
            f" (after imports {result['baseline_kb'] / 1024:4.0f} MiB), {result['seconds']:.1f} s"
        )
    if len(rss) >= 2:
        (_, r0), (_, r1) = rss[0], rss[-1]
        growth = (r1["peak_kb"] - r0["peak_kb"]) / 1024
        extra = max(1, r1["rows"] - r0["rows"])
        report.append(
            f"  growth: {growth:+.0f} MiB for {extra:,} more events ({growth * 1024 * 1024 / extra:.0f} B/event)"
        )
    if args.cprofile:
        for label, path in (
            ("events source run (main thread)", workdir / "source_events.prof"),
            ("floor run", floor_profile),
        ):
            if path and path.exists():
                report.append("")
                report.append(f"cProfile, {label}, by own time:")
                report.append(top_functions(path))
    report.append("=" * 100)


if __name__ == "__main__":
    main()
