"""End-to-end load benchmark of the Klaviyo dlt source against the local emulator.

The emulator runs in its own process (``python -m klaviyo_emulator``) with Klaviyo's real
per-endpoint rate limits, a fixed latency per request plus a little per returned record, and an
account of the requested size. This process runs the dlt pipelines into fresh DuckDB files and
prints:

* events (``.with_resources("events")``) with a bare ``pipeline.run(source)``, what every user gets
  (in one run: ``chunk_rows`` above the account's size, see ONE_RUN_CHUNK_ROWS):
  rows/s end to end, with the extract / normalize / load split, and ÷ Klaviyo's 58,000 events/s;
* the floors: the very same event rows loaded by dlt from memory, as the Arrow tables the source
  yields and as dicts (nested ``event_properties``, dlt's per-row normalisation), and source ÷ floor;
* profiles and list_members (rate-bound, 750 requests/min): requests/s ÷ 12.5/s and the 429 share;
* all of the above again with ``workers=1``;
* events at a realistic latency (a second emulator of 300k events, 500 ms per request): requests/s ÷ Klaviyo's 58.3/s;
* peak RSS (VmHWM) of a fresh process loading all events of an account of 150k and of 1M events: the
  default path (``load_history`` with the default ``chunk_rows``, a run per chunk, with the highest
  VmRSS per run and dlt step), one run (``chunk_rows`` above the account), and both with DuckDB's
  ``memory_limit`` set in dlt's config (DuckDB caches up to 80% of the RAM); ÷ the 300 MB target;
* DuckDB loading of the in-memory dict rows with ``insert_values``, ``jsonl`` and ``parquet``.

Usage::

    python benchmarks/load_benchmark.py            # full run, ~15 minutes on 2 cores
    python benchmarks/load_benchmark.py --quick    # ~1.5 minutes
    python benchmarks/load_benchmark.py --rss-only --rss-events 1000000 --rss-formats history
    python benchmarks/load_benchmark.py --events 150000 --profiles 20000 --list-members 20000 \
        --latency-ms 80 --workers 4
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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
# ERROR: dlt warns on every run that `location__address2` got no data (profiles, list_members)
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import dlt  # noqa: E402
import requests  # noqa: E402

import klaviyo  # noqa: E402
from klaviyo import BATCH_ROWS, klaviyo_source  # noqa: E402
from klaviyo.client import KlaviyoClient, RequestStats  # noqa: E402
from klaviyo.settings import DEFAULT_WORKERS, ENDPOINTS  # noqa: E402

API_KEY = "pk_emulator_test_key_0000000000000000"

# A table with more rows than `chunk_rows` loads one chunk per run (klaviyo/history.py). Each load
# here is timed as one run (extract / normalize / load), so chunks are set larger than any account
# it makes: the whole load in that run, e.g. all 1M events of the peak-RSS run. The cost of chunking
# itself is what benchmarks/history_benchmark.py measures.
ONE_RUN_CHUNK_ROWS = 1_000_000_000
FORMATS = ("insert_values", "jsonl", "parquet")
# what dlt writes for DuckDB when no format is given (insert_values in dlt 1.31)
DEFAULT_FORMAT = str(dlt.destinations.duckdb().capabilities().preferred_loader_file_format)
STEADY_PER_S = ENDPOINTS["profiles"].steady_per_minute / 60.0  # 750/min = 12.5/s
# Klaviyo's limit for one account: 3,500 event requests a minute of 1,000 events each
KLAVIYO_EVENTS_PER_S = ENDPOINTS["events"].steady_per_minute / 60.0 * (ENDPOINTS["events"].page_size or 0)
TARGET_EVENTS_PER_S = 40_000
TARGET_PEAK_MB = 300  # the target at 1M events
DUCKDB_MEMORY_LIMIT_RUN = "memory_limit"  # a peak-RSS run with DuckDB's memory_limit from dlt config
# peak-RSS runs of the default path: load_history with the DEFAULT chunk_rows (a run per chunk)
HISTORY_RUN = "history"
HISTORY_MEMORY_LIMIT_RUN = "history_memory_limit"  # the same, with DuckDB's memory_limit from dlt config
RSS_LABELS = {
    HISTORY_RUN: "default path (load_history, chunk_rows default)",
    HISTORY_MEMORY_LIMIT_RUN: "default path + DuckDB memory_limit 128MB",
    "default": "one run (chunk_rows above the account)",
    DUCKDB_MEMORY_LIMIT_RUN: "one run + DuckDB memory_limit 128MB",
}
Rows = List[Dict[str, Any]]
Page = Any  # a pyarrow.Table (the source's pages) or a list of dicts


# --------------------------------------------------------------------------- emulator process


class EmulatorProcess:
    """``python -m klaviyo_emulator`` in a subprocess on a free port; stopped on exit."""

    def __init__(self, args: argparse.Namespace, events: Optional[int] = None) -> None:
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
            str(events or args.events),
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

    def cpu_seconds(self) -> float:
        """user + system CPU of the emulator process so far (it is single-process, GIL-bound)."""
        if self.proc is None:
            return 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


DEFAULT_SELECTION = "default"  # source_run's name for "every table selected by default"


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
    emulator_cpu_s: Optional[float] = None  # CPU the emulator process used during the run

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


def describe_difference(
    tables: Dict[str, Tuple[int, int, int]], reference: Dict[str, Tuple[int, int, int]]
) -> str:
    return "; ".join(
        f"{t} (rows, columns, hash) {tables.get(t)} vs {reference.get(t)}"
        for t in sorted(set(tables) | set(reference))
        if tables.get(t) != reference.get(t)
    )


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
    loader_file_format: Optional[str] = None,
) -> Run:
    """One resource of the source, or every default-selected one when `resource_name` is "default"."""
    with capture_clients() as clients:
        source = klaviyo_source(
            api_key=API_KEY,
            base_url=base_url,
            workers=workers,
            start_date=start_date,
            chunk_rows=ONE_RUN_CHUNK_ROWS,
        )
    if resource_name != DEFAULT_SELECTION:
        source = source.with_resources(resource_name)
    suffix = f"_{loader_file_format}" if loader_file_format else ""
    label = f"{resource_name} w={workers}{suffix.replace('_', ' ')}"
    pipeline = new_pipeline(workdir, f"src_{resource_name}_w{workers}{suffix}")
    run = timed_load(pipeline, source, label, resource_name, loader_file_format, profile_to=profile_to)
    if resource_name == DEFAULT_SELECTION:
        run.rows = sum(rows for rows, _, _ in run.tables.values())
    run.stats = clients[0].stats if clients else None
    return run


def events_hints() -> Tuple[Any, Dict[str, Any]]:
    """The source's own write disposition and column hints of `events` (read, not copied by hand)."""
    resource = klaviyo_source(api_key=API_KEY, base_url="http://127.0.0.1:9/api").resources["events"]
    # the disposition may be a dict: the source declares the event rows unique (no staging dedup)
    return copy.deepcopy(resource.write_disposition), copy.deepcopy(dict(resource.columns or {}))  # type: ignore[arg-type]


def memory_resource(pages: Sequence[Page], dicts: bool = False) -> Any:
    # the same primary key, disposition and column hints as the source's `events` resource, and
    # items of BATCH_ROWS rows like the source's; no incremental, no HTTP: what dlt itself costs for these rows.
    # As dicts, `event_properties` is a nested object as a dict-yielding source hands it to dlt, so
    # dlt normalises it row by row into columns (what this source did before it yielded Arrow).
    disposition, columns = events_hints()
    if dicts:
        columns = {name: hint for name, hint in columns.items() if hint.get("data_type") != "json"}

    @dlt.resource(name="events", primary_key="id", write_disposition=disposition, columns=columns)  # type: ignore[call-overload]
    def events() -> Iterator[Rows]:
        yield from pages

    return events()


# --------------------------------------------------------------------------- floor rows


def capture_event_pages(base_url: str, workers: int) -> List[Any]:
    """Every table the source's `events` resource yields, collected once (not timed), sorted by
    `datetime` like the API's pages and re-cut into the source's batches of BATCH_ROWS rows.

    Why this is the fair floor: these are the very tables the source produces (its own `to_row`, the
    metric columns from `include=metric`, its fixed schema), taken by iterating the resource itself,
    so the floor follows whatever the source does and differs from a source run only by HTTP, JSON
    decoding, shaping, threads and the incremental. The content check below proves floor and source
    tables equal.
    """
    import pyarrow as pa

    source = klaviyo_source(
        api_key=API_KEY, base_url=base_url, workers=workers, chunk_rows=ONE_RUN_CHUNK_ROWS
    )
    tables = [item for item in source.resources["events"] if isinstance(item, pa.Table)]
    table = pa.concat_tables(tables).sort_by([("datetime", "ascending"), ("id", "ascending")])
    return [table.slice(i, BATCH_ROWS) for i in range(0, table.num_rows, BATCH_ROWS)]


def as_dict_pages(pages: Sequence[Any]) -> List[Rows]:
    """The same rows as a dict-yielding source would give them: JSON columns as nested objects."""
    rows_pages = []
    for page in pages:
        rows = page.to_pylist()
        for row in rows:
            for name in ("event_properties", "extra_attributes"):
                if row.get(name) is not None:
                    row[name] = json.loads(row[name])
        rows_pages.append(rows)
    return rows_pages


# --------------------------------------------------------------------------- RSS child


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB.

    `getrusage(RUSAGE_SELF).ru_maxrss` is the figure asked for, but Linux carries it over fork and
    exec, so a child started by this (large) process would report the parent's peak. VmHWM in
    /proc/self/status is the same high-water mark for this process's own address space only.
    """
    return proc_status_kb("VmHWM") or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def proc_status_kb(field: str) -> int:
    """A figure of /proc/self/status in KiB (VmHWM, VmRSS), 0 where there is none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def rss_child(
    base_url: str, workers: int, start_date: Optional[str], loader_file_format: Optional[str], workdir: Path
) -> None:
    """Runs in a fresh process: loads the events from `start_date` on and reports peak RSS."""
    baseline_kb = peak_rss_kb()
    run = source_run(
        workdir, base_url, "events", workers, start_date=start_date, loader_file_format=loader_file_format
    )
    result = {
        "rows": run.rows,
        "seconds": run.total_s,
        "baseline_kb": baseline_kb,
        "peak_kb": peak_rss_kb(),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print("RSS_RESULT " + json.dumps(result), flush=True)


class RssSampler:
    """Samples this process's VmRSS (and the bytes pyarrow holds) every few ms on a thread, and keeps
    the highest figure per phase: the run (1, 2, ...) and dlt's step in it (extract, normalize,
    load), which `phase` marks. The whole child's peak stays VmHWM; this says where it was reached.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.phase = "setup"
        self.peaks: Dict[str, Dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import pyarrow as pa

        while not self._stop.is_set():
            rss_kb = proc_status_kb("VmRSS")
            arrow_kb = pa.total_allocated_bytes() // 1024
            peak = self.peaks.setdefault(
                self.phase, {"rss_kb": 0, "arrow_kb": 0, "start": time.perf_counter()}
            )
            if rss_kb > peak["rss_kb"]:
                peak["rss_kb"], peak["arrow_kb"] = rss_kb, arrow_kb
            peak["end"] = time.perf_counter()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark_phases(self, pipeline: dlt.Pipeline) -> None:
        """pipeline.run calls self.extract / normalize / load: wrapped on this instance to mark them."""
        runs = [0]

        def marked(step: str, method: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if step == "extract":
                    runs[0] += 1
                self.phase = f"run {runs[0]} {step}"
                try:
                    return method(*args, **kwargs)
                finally:
                    self.phase = f"run {runs[0]} after {step}"

            return wrapper

        for step in ("extract", "normalize", "load"):
            setattr(pipeline, step, marked(step, getattr(pipeline, step)))


def history_rss_child(base_url: str, workers: int, workdir: Path) -> None:
    """Runs in a fresh process: loads every event the way a user does by default, in committed
    chunks of the DEFAULT chunk_rows (`load_history`, one pipeline.run per chunk), and reports the
    peak RSS of the whole process and per run and dlt step."""
    from klaviyo.history import load_history

    baseline_kb = peak_rss_kb()
    pipeline = new_pipeline(workdir, "rss_history")
    with RssSampler() as sampler:
        sampler.mark_phases(pipeline)
        started = time.perf_counter()
        infos = load_history(
            pipeline,
            lambda: klaviyo_source(api_key=API_KEY, base_url=base_url, workers=workers).with_resources(
                "events"
            ),
            progress=log,
        )
        seconds = time.perf_counter() - started
    rows = fingerprints(pipeline).get("events", (0, 0, 0))[0]
    result = {
        "rows": rows,
        "seconds": seconds,
        "runs": len(infos),
        "baseline_kb": baseline_kb,
        "peak_kb": peak_rss_kb(),
        "phases": sampler.peaks,
    }
    print("RSS_RESULT " + json.dumps(result), flush=True)


def measure_rss(
    base_url: str, workers: int, start_date: Optional[str], loader_file_format: str, workdir: Path
) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--rss-child", "--base-url", base_url, "--workers", str(workers)]
    cmd += ["--workdir", str(workdir), "--format", loader_file_format]
    if start_date:
        cmd += ["--start-date", start_date]
    return child_result(cmd)


def child_result(cmd: List[str], env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Runs a measuring child process and returns what it printed on its `RSS_RESULT ` line."""
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RSS_RESULT "):
            return dict(json.loads(line[len("RSS_RESULT ") :]))
    raise RuntimeError(f"RSS child failed:\n{done.stdout}\n{done.stderr}")


# --------------------------------------------------------------------------- reporting


def rss_runs(
    args: argparse.Namespace, workdir: Path, base_url: Optional[str], guard: Optional[QuotaGuard]
) -> List[Tuple[str, int, Dict[str, Any]]]:
    """Peak RSS in fresh processes, per account size and kind of run; an account of another size
    than the main emulator's (or any, without one) gets its own emulator."""
    rss: List[Tuple[str, int, Dict[str, Any]]] = []
    for count in args.rss_counts:
        with contextlib.ExitStack() as stack:
            if count == args.events and base_url is not None and guard is not None:
                rss_url, rss_guard = base_url, guard
            else:
                log(f"starting an emulator with {count:,} events for the peak-RSS run ...")
                rss_url, rss_guard = (
                    stack.enter_context(EmulatorProcess(args, events=count)).base_url,
                    QuotaGuard(),
                )
            for fmt in args.rss_formats.split(","):
                estimate = math.ceil(count / 1000) + 4 * args.workers + 2
                rss_guard.wait("events", estimate)
                log(f"peak-RSS child: {count:,} events, {RSS_LABELS.get(fmt, 'one run, format ' + fmt)} ...")
                result = measure_rss(rss_url, args.workers, None, fmt, workdir)
                rss_guard.record("events", estimate)
                rss.append((fmt, count, result))
                log(f"  {result}")
    return rss


def rss_report(args: argparse.Namespace, rss: List[Tuple[str, int, Dict[str, Any]]], add: Any) -> None:
    add(
        f"peak RSS (VmHWM) of a fresh process loading every event of an account (workers={args.workers});"
        f" target <= {TARGET_PEAK_MB} MB at 1M events"
    )
    for fmt, count, result in rss:
        peak = result["peak_kb"] / 1024
        to_target = result["peak_kb"] * 1024 / (TARGET_PEAK_MB * 1e6)
        verdict = (
            f" ({result['peak_kb'] * 1024 / 1e6:,.0f} MB = {to_target:4.2f} x the {TARGET_PEAK_MB} MB target"
            + (f", {'meets' if to_target <= 1 else 'misses'})" if count >= 1_000_000 else ")")
        )
        runs = f" in {result['runs']} run{'s' if result['runs'] != 1 else ''}" if "runs" in result else ""
        add(
            f"  {RSS_LABELS.get(fmt, 'one run, format ' + fmt):<48} {result['rows']:>9,} events{runs}:"
            f" peak {peak:6.0f} MiB{verdict} (after imports {result['baseline_kb'] / 1024:4.0f} MiB),"
            f" wall {result['seconds']:5.1f} s ="
            f" {result['rows'] / result['seconds'] if result['seconds'] else 0:,.0f} events/s, emulator not warmed"
        )
        for phase, peak_of in result.get("phases", {}).items():
            if phase.startswith("run ") and " after " not in phase:
                add(
                    f"  {'':<48}   {phase:<16} max VmRSS {peak_of['rss_kb'] / 1024:6.0f} MiB"
                    f" ({peak_of['rss_kb'] * 1024 / (TARGET_PEAK_MB * 1e6):4.2f} x target), pyarrow's pool"
                    f" {peak_of['arrow_kb'] / 1024:5.0f} MiB, {peak_of.get('end', 0) - peak_of['start']:5.1f} s"
                )
    for fmt in args.rss_formats.split(","):
        points = [r for f, _, r in rss if f == fmt]
        if len(points) >= 2:
            extra = max(1, points[-1]["rows"] - points[0]["rows"])
            growth = (points[-1]["peak_kb"] - points[0]["peak_kb"]) / 1024
            add(
                f"  {RSS_LABELS.get(fmt, fmt):<48} growth {growth:+6.0f} MiB for {extra:,} more events"
                f" ({growth * 1024 * 1024 / extra:,.0f} B/event)"
            )
    add("  (peak = VmHWM, i.e. ru_maxrss of the child's own address space; ru_maxrss itself carries the")
    add("   parent's peak over fork+exec on Linux; per step: VmRSS sampled every 20 ms)")


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
    if run.emulator_cpu_s is not None:
        req += f" | emulator CPU {run.emulator_cpu_s:.1f} s"
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
        f" ({share:.1%}) | limiter held {stats.limiter_wait:5.1f} s | {1000 / req_s if req_s else 0:4.0f} ms"
        f" between responses | emulator CPU {run.emulator_cpu_s or 0:5.1f} s | end to end {run.total_s:5.1f} s ="
        f" {run.rows / run.total_s if run.total_s else 0:,.0f} rows/s"
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
    p.add_argument("--events", type=int, help="events in the account (default 150000; quick 10000)")
    p.add_argument("--profiles", type=int, help="profiles in the account (default 10000; quick 2000)")
    p.add_argument("--list-members", type=int, help="members of the large list (default 10000; quick 2000)")
    p.add_argument("--latency-ms", type=float, default=80.0, help="emulator latency per request")
    p.add_argument("--latency-per-record-ms", type=float, default=0.02, help="emulator latency per record")
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="source workers (default: the source's own default)",
    )
    p.add_argument(
        "--real-latency-ms",
        type=float,
        default=500.0,
        help="latency of a second emulator, for the events run at a realistic latency (0: no such run)",
    )
    p.add_argument(
        "--real-latency-events",
        type=int,
        help="events of that emulator's account (default 300000, enough requests for a steady rate; quick 20000)",
    )
    p.add_argument("--seed", type=int, default=1, help="emulator account seed")
    p.add_argument(
        "--rss-events",
        help="comma-separated account sizes (events) for the peak-RSS runs; a size other than --events"
        " starts its own emulator (default <events>,1000000; quick <events>,50000)",
    )
    p.add_argument(
        "--rss-formats",
        default=f"{HISTORY_RUN},default,{DUCKDB_MEMORY_LIMIT_RUN}",
        help=f"kinds of peak-RSS run: '{HISTORY_RUN}' (the default path: load_history with the default"
        " chunk_rows, a pipeline.run per chunk), 'default' (one bare run, chunk_rows above the account),"
        f" a loader file format for one run (e.g. jsonl), '{DUCKDB_MEMORY_LIMIT_RUN}' or"
        f" '{HISTORY_MEMORY_LIMIT_RUN}' (one run / the default path with DuckDB's memory_limit set in"
        " dlt's config)",
    )
    p.add_argument(
        "--rss-only", action="store_true", help="run only the peak-RSS section (each size its own emulator)"
    )
    p.add_argument("--skip-workers-1", action="store_true", help="do not repeat the runs with workers=1")
    p.add_argument("--cprofile", action="store_true", help="cProfile the events source and floor runs")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the DuckDB files")
    # internal: the peak-RSS child process
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--start-date", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--format", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.events = args.events or (10_000 if args.quick else 150_000)
    args.profiles = args.profiles or (2_000 if args.quick else 10_000)
    args.list_members = args.list_members or (2_000 if args.quick else 10_000)
    args.real_latency_events = args.real_latency_events or (20_000 if args.quick else 300_000)
    if args.rss_events:
        args.rss_counts = [int(n) for n in args.rss_events.split(",")]
    else:
        args.rss_counts = [args.events, 50_000 if args.quick else 1_000_000]
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.rss_child:
        workdir = Path(tempfile.mkdtemp(dir=args.workdir))
        if args.format in (DUCKDB_MEMORY_LIMIT_RUN, HISTORY_MEMORY_LIMIT_RUN):
            # what a user writes once in .dlt/config.toml: [destination.duckdb.credentials]
            # global_config = {memory_limit = "128MB"}; DuckDB's own default is 80% of the RAM
            os.environ["DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"] = '{"memory_limit": "128MB"}'
        if args.format in (HISTORY_RUN, HISTORY_MEMORY_LIMIT_RUN):
            history_rss_child(args.base_url, args.workers, workdir)
            return
        fmt = None if args.format in ("default", DUCKDB_MEMORY_LIMIT_RUN) else args.format
        rss_child(args.base_url, args.workers, args.start_date, fmt, workdir)
        return

    workdir = Path(tempfile.mkdtemp(prefix="klaviyo_bench_"))
    report: List[str] = []
    try:
        if args.rss_only:
            add = report.append
            add("")
            add("=" * 110)
            add("Klaviyo source load benchmark: peak RSS only (--rss-only)")
            add(f"machine:  {machine()}")
            rss_report(args, rss_runs(args, workdir, None, None), add)
            add("=" * 110)
        else:
            with EmulatorProcess(args) as emulator:
                log(
                    f"emulator up at {emulator.base_url} after {emulator.startup_s:.1f} s:"
                    f" {' '.join(emulator.cmd[3:])}"
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
    profiles: Dict[str, Path] = {}

    def profile_path(label: str) -> Optional[Path]:
        if not args.cprofile:
            return None
        profiles[label] = workdir / f"{len(profiles)}.prof"
        return profiles[label]

    # warm-up, untimed: first-use imports and caches (duckdb, pyarrow, dlt's writers) for every format
    warm = [
        [{"id": str(i), "datetime": "2024-01-01T00:00:00+00:00", "event_properties": {"a": i}}]
        for i in range(3)
    ]
    for fmt in FORMATS:
        timed_load(
            new_pipeline(workdir, f"warmup_{fmt}"), memory_resource(warm, dicts=True), "warm", "events", fmt
        )

    event_requests = math.ceil(args.events / 1000) + 4 * args.workers + 2
    # warm-up of the emulator, untimed: it caches each event's JSON on first serving. Klaviyo's own
    # serving costs this machine nothing, so the timed runs should not pay for the emulator's either.
    log("warming the emulator's event cache (untimed) ...")
    warm_start = time.perf_counter()
    warm_rows = sum(page.num_rows for page in capture_event_pages(base_url, args.workers))
    log(f"  {warm_rows:,} events in {time.perf_counter() - warm_start:.1f} s")
    gc.collect()
    guard.record("events", event_requests)

    # ---- the source against the emulator
    runs: Dict[str, Run] = {}
    worker_counts = [args.workers] if args.skip_workers_1 or args.workers == 1 else [args.workers, 1]
    # per run: the rate-limited endpoints it reads and an estimate of its requests to each
    expected: Dict[str, List[Tuple[str, int]]] = {
        "events": [("events", event_requests)],
        "profiles": [("profiles", math.ceil(args.profiles / 100) + 4 * args.workers + 2)],
        "list_members": [("list_profiles", math.ceil(args.list_members / 100) + 20)],
    }
    # the default selection (six metric tables, profiles, lists and members, campaigns, ...) in one run
    expected[DEFAULT_SELECTION] = expected["events"] + expected["profiles"] + expected["list_members"]
    plan: List[Tuple[str, int, Optional[str]]] = []
    for workers in worker_counts:
        # every run is a bare pipeline.run(source): the source yields Arrow, dlt writes parquet
        plan += [("events", workers, None), ("profiles", workers, None), ("list_members", workers, None)]
    plan.append((DEFAULT_SELECTION, args.workers, None))
    for name, workers, fmt in plan:
        for endpoint, estimate in expected[name]:
            guard.wait(endpoint, estimate)
        key = f"{name}/{workers}/{fmt or 'default'}"
        profile = (
            profile_path(f"source {key} (main thread)")
            if name == "events" and workers == args.workers
            else None
        )
        log(f"source run: {key} ...")
        cpu_before = emulator.cpu_seconds()
        run = source_run(workdir, base_url, name, workers, profile_to=profile, loader_file_format=fmt)
        run.emulator_cpu_s = emulator.cpu_seconds() - cpu_before
        # a run of one endpoint knows its real count; a mixed run's split is estimated
        counted = run.stats.requests if run.stats and len(expected[name]) == 1 else None
        for endpoint, estimate in expected[name]:
            guard.record(endpoint, estimate if counted is None else counted)
        runs[key] = run
        log("  " + (rate_line(run) if name in ("profiles", "list_members") else events_line(run)))

    # ---- the floor: the same rows from memory. They are fetched now, untimed, after the source runs
    # so that those do not pay for a heap full of rows, and frozen so the garbage collector skips them.
    guard.wait("events", event_requests)
    log("fetching the event rows for the floor (untimed) ...")
    t0 = time.perf_counter()
    pages = capture_event_pages(base_url, args.workers)
    dict_pages = as_dict_pages(pages)
    guard.record("events", event_requests)
    fetch_s = time.perf_counter() - t0
    gc.collect()
    gc.freeze()
    log("floor run (memory): Arrow tables, bare run ...")
    arrow_floor = timed_load(
        new_pipeline(workdir, "floor_arrow"),
        memory_resource(pages),
        "floor Arrow",
        "events",
        profile_to=profile_path("floor Arrow"),
    )
    log("  " + events_line(arrow_floor))
    floors: Dict[str, Run] = {}  # dicts; the default format first: what a bare run of dicts gets
    for fmt in (DEFAULT_FORMAT, *[f for f in FORMATS if f != DEFAULT_FORMAT]):
        log(f"floor run (memory): dicts, {fmt} ...")
        floors[fmt] = timed_load(
            new_pipeline(workdir, f"floor_{fmt}"),
            memory_resource(dict_pages, dicts=True),
            f"floor dicts {fmt}",
            "events",
            fmt,
            profile_to=profile_path(f"floor dicts {fmt}") if fmt == "parquet" else None,
        )
        log("  " + events_line(floors[fmt]))
    del pages, dict_pages
    gc.unfreeze()
    gc.collect()

    # ---- workers at a realistic latency: does one events table reach Klaviyo's limit?
    slow_run: Optional[Run] = None
    if args.real_latency_ms:
        slow_args = argparse.Namespace(
            **{**vars(args), "latency_ms": args.real_latency_ms, "events": args.real_latency_events}
        )
        log(f"starting an emulator with {args.real_latency_ms:g} ms latency per request ...")
        with EmulatorProcess(slow_args) as slow:
            capture_event_pages(slow.base_url, args.workers)  # warms its event cache, untimed
            slow_guard = QuotaGuard()
            slow_guard.record("events", math.ceil(args.real_latency_events / 1000) + 4 * args.workers + 2)
            slow_guard.wait("events", math.ceil(args.real_latency_events / 1000) + 4 * args.workers + 2)
            log(f"source run: events at {args.real_latency_ms:g} ms latency, workers={args.workers} ...")
            slow_run = source_run(workdir, slow.base_url, "events", args.workers)
            log("  " + events_line(slow_run))

    rss = rss_runs(args, workdir, base_url, guard)

    # ------------------------------------------------------------------ the report
    add = report.append
    add("")
    add("=" * 110)
    add("Klaviyo source load benchmark")
    add(f"machine:  {machine()}")
    if args.cprofile:
        add("NOTE: --cprofile was on: the profiled runs (events w=N, floors) are slower than without it")
    add(
        f"emulator: separate process, {args.events:,} events, {args.profiles:,} profiles, large list of"
        f" {args.list_members:,}; rate limits 1x (real); latency {args.latency_ms:g} ms/request +"
        f" {args.latency_per_record_ms:g} ms/record; account built in {emulator.startup_s:.1f} s"
    )
    add("")
    add(
        "events (with_resources('events'), merge on id), a bare pipeline.run(source); wall = extract + normalize + load"
    )
    event_runs = [(k, r) for k, r in runs.items() if k.startswith("events/")]
    for _, run in event_runs:
        add("  " + events_line(run))
    add("  " + events_line(arrow_floor))
    for run in floors.values():
        add("  " + events_line(run))
    reference = arrow_floor.tables
    differing = [r for _, r in event_runs if r.tables != reference]
    add(
        f"  floors = the same {arrow_floor.rows:,} rows from memory (fetched untimed in {fetch_s:.1f} s), as the"
        " source's Arrow tables and as dicts with nested event_properties; source tables, rows and content"
        f" {'identical to the Arrow floor in every run' if not differing else 'DIFFER:'}"
    )
    for run in differing:
        add(f"    {run.label}: {describe_difference(run.tables, reference)}")
    page_s = (args.latency_ms + 1000 * args.latency_per_record_ms) / 1000
    dict_floor = floors[DEFAULT_FORMAT]
    for key, run in event_runs:
        workers = int(key.split("/")[1])
        rate = run.rows / run.total_s if run.total_s else 0.0
        latency_only = (run.stats.requests if run.stats else 0) * page_s / workers
        to_dicts = run.total_s / dict_floor.total_s if dict_floor.total_s else float("inf")
        to_parquet_dicts = (
            run.total_s / floors["parquet"].total_s if floors["parquet"].total_s else float("inf")
        )
        to_arrow = run.total_s / arrow_floor.total_s if arrow_floor.total_s else float("inf")
        add(
            f"  {run.label:<10} {rate:>8,.0f} events/s = {rate / KLAVIYO_EVENTS_PER_S:4.2f} x Klaviyo's"
            f" {KLAVIYO_EVENTS_PER_S:,.0f}/s ({'meets' if rate >= TARGET_EVENTS_PER_S else 'misses'}"
            f" >= {TARGET_EVENTS_PER_S:,}/s)"
        )
        add(
            f"  {'':<10} wall {run.total_s:5.1f} s = {to_dicts:4.2f} x the dict floor ({DEFAULT_FORMAT})"
            f" ({'meets' if to_dicts <= 0.5 else 'misses'} <= 0.5), {to_parquet_dicts:4.2f} x dicts in parquet,"
            f" {to_arrow:4.2f} x the Arrow floor; extract {run.extract_s:.1f} s vs {arrow_floor.extract_s:.1f} s"
            f" from memory, emulator latency alone {latency_only:.1f} s"
        )
    if slow_run is not None and slow_run.stats:
        req_s = slow_run.stats.requests / slow_run.extract_s if slow_run.extract_s else 0.0
        limit = ENDPOINTS["events"].steady_per_minute / 60.0
        add(
            f"  at {args.real_latency_ms:g} ms per request (a second emulator, {slow_run.rows:,} events),"
            f" workers={args.workers}: {slow_run.stats.requests} requests in {slow_run.extract_s:.1f} s ="
            f" {req_s:.1f} req/s = {req_s / limit:4.2f} x Klaviyo's {limit:.1f}/s"
            f" ({'reaches' if req_s >= 0.9 * limit else 'misses'} >= 0.9 x), 429: {slow_run.stats.throttled},"
            f" limiter held {slow_run.stats.limiter_wait:.1f} s;"
            f" {slow_run.rows / slow_run.total_s if slow_run.total_s else 0:,.0f} events/s end to end"
        )
    add("")
    default_run = runs[f"{DEFAULT_SELECTION}/{args.workers}/default"]
    add("the default selection (klaviyo_source(), a bare pipeline.run)")
    add("  " + events_line(default_run))
    add("  rows per table: " + ", ".join(f"{t} {n:,}" for t, (n, _, _) in sorted(default_run.tables.items())))
    if default_run.stats and default_run.stats.requests:
        share = default_run.stats.throttled / default_run.stats.requests
        add(f"  429 share {share:.2%} ({'meets' if share < 0.01 else 'misses'} < 1%)")
    add("")
    add("rate-bound endpoints (750 requests/min = 12.5/s steady, 75/s burst); req/s over the extract phase")
    rate_runs = [r for k, r in runs.items() if k.split("/")[0] in ("profiles", "list_members")]
    for run in sorted(rate_runs, key=lambda r: r.label):
        add("  " + rate_line(run))
    longest = max((r.stats or RequestStats()).requests for r in rate_runs)
    if longest <= ENDPOINTS["profiles"].steady_per_minute:
        add(
            f"  note: at most {longest} requests per run fit in one minute's 750, so only the 75/s burst limit"
            " applies and more than 12.5/s is legitimate; the steady window binds only in runs of more than"
            " 750 requests (--profiles / --list-members of 100000+)."
        )
    add("")
    add("DuckDB loader file formats, the same event rows from memory as dicts (fresh pipeline and file each)")
    reference_tables = floors[DEFAULT_FORMAT].tables
    for fmt, run in floors.items():
        if run.tables == reference_tables:
            check = f"same tables, rows and content as {DEFAULT_FORMAT}"
        else:
            check = "DIFFERS: " + describe_difference(run.tables, reference_tables)
        rate = run.rows / run.total_s if run.total_s else 0.0
        add(f"  {fmt:<13} {run.total_s:6.1f} s {rate:>9,.0f} rows/s | {phases(run)} | {check}")
    add("")
    rss_report(args, rss, add)
    for label, path in profiles.items():
        if path.exists():
            add("")
            add(f"cProfile, {label}, top functions by own time:")
            add(top_functions(path))
    add("=" * 110)


if __name__ == "__main__":
    main()
