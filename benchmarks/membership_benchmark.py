"""Membership runs of an account with 100,000 profiles and 100,000 memberships in 5 lists.

The emulator runs in its own process with Klaviyo's rate limits (including `profile_count`'s own
1/s and 15/min) and a fixed latency per request. This process loads `list_members` into DuckDB
with a bare `pipeline.run(source)` and prints, for each run, the requests by operation and the
wall time:

1. the first load (every member);
2. the second run of the unchanged account (target: <= 30 requests, <= 10 s);
3. a run after one member left one list (target: only that list's ids are read; the table then
   holds exactly Klaviyo's members);
4. for comparison, the second run with `membership="snapshot"` (every member read again).

Usage::

    python benchmarks/membership_benchmark.py                 # ~3 minutes
    python benchmarks/membership_benchmark.py --skip-snapshot # ~1 minute
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Dict, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

import dlt  # noqa: E402

from klaviyo import klaviyo_source  # noqa: E402
from klaviyo.settings import ENDPOINTS  # noqa: E402

TARGET_REQUESTS = 30
TARGET_SECONDS = 10.0


def serve(conn: Connection, profiles: int, lists: int, members_each: int, latency_ms: float) -> None:
    """The emulator process: answers commands from the benchmark over `conn`."""
    from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator
    from klaviyo_emulator.membership import add_lists

    spec = AccountSpec(profiles=profiles, events=100, lists=0, segments=1, campaigns_per_channel=1)
    with run_emulator(EmulatorConfig(account=spec, rate_limit_scale=1.0, latency_ms=latency_ms)) as emu:
        list_ids = add_lists(emu.account, lists, members_each)
        conn.send((emu.base_url, emu.api_key, list_ids))
        while True:
            command, *args = conn.recv()
            if command == "log":
                conn.send([entry.operation_id for entry in emu.request_log])
                emu.clear_log()
            elif command == "remove":
                list_id = args[0]
                member = sorted(emu.account.list_members(list_id))[0]
                emu.account.remove_list_member(list_id, member)
                conn.send(member)
            elif command == "members":
                conn.send({i: sorted(emu.account.list_members(i)) for i in list_ids})
            else:
                conn.send(None)
                return


def run(pipeline: dlt.Pipeline, conn: Connection, source: Any) -> Tuple[float, Dict[str, int]]:
    conn.send(("log",))
    conn.recv()  # clears the emulator's log
    started = time.perf_counter()
    pipeline.run(source.with_resources("list_members"))
    seconds = time.perf_counter() - started
    steps = ", ".join(
        f"{step.step} {(step.finished_at - step.started_at).total_seconds():.1f} s"
        for step in pipeline.last_trace.steps
        if step.finished_at is not None
    )
    print(f"   (steps: {steps})")
    conn.send(("log",))
    return seconds, dict(collections.Counter(conn.recv()))


def show(title: str, seconds: float, requests: Dict[str, int]) -> int:
    total = sum(requests.values())
    by_operation = ", ".join(f"{op} {n}" for op, n in sorted(requests.items()))
    print(f"{title}: {total} requests in {seconds:.1f} s ({by_operation})")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--lists", type=int, default=5)
    parser.add_argument("--members-each", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-snapshot", action="store_true", help="leave out the snapshot comparison")
    args = parser.parse_args()

    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(
        target=serve,
        args=(theirs, args.profiles, args.lists, args.members_each, args.latency_ms),
        daemon=True,
    )
    server.start()
    base_url, api_key, list_ids = ours.recv()
    members = args.lists * args.members_each
    print(
        f"Account: {args.profiles:,} profiles, {members:,} memberships in {args.lists} lists;"
        f" emulator latency {args.latency_ms:.0f} ms/request, Klaviyo's rate limits (shared machine)"
    )
    count_tier = ENDPOINTS["list_profile_count"]
    ids_tier = ENDPOINTS["list_profile_ids"]
    # what an unchanged run cannot do with less: the lists page, one joins read and one count per list
    floor_requests = 1 + 2 * args.lists
    floor_seconds = (args.lists - 1) / count_tier.burst_per_second
    snapshot_requests = 1 + sum(-(-args.members_each // (ids_tier.page_size or 100)) for _ in list_ids)
    snapshot_limit_s = snapshot_requests / (ids_tier.steady_per_minute / 60.0)

    with tempfile.TemporaryDirectory() as tmp:

        def pipeline(name: str) -> dlt.Pipeline:
            return dlt.pipeline(
                pipeline_name=name,
                pipelines_dir=f"{tmp}/pipelines",
                destination=dlt.destinations.duckdb(f"{tmp}/{name}.duckdb"),
                dataset_name="klaviyo_data",
            )

        def source(**options: Any) -> Any:
            return klaviyo_source(api_key=api_key, base_url=base_url, **options)

        incremental = pipeline("incremental")
        show("1. first load", *run(incremental, ours, source()))
        seconds, requests = run(incremental, ours, source())
        total = show("2. second run, unchanged", seconds, requests)
        print(
            f"   targets <= {TARGET_REQUESTS} requests, <= {TARGET_SECONDS:.0f} s: requests"
            f" {'met' if total <= TARGET_REQUESTS else 'MISSED'}, time"
            f" {'met' if seconds <= TARGET_SECONDS else 'MISSED'}; {total / floor_requests:.1f}x the floor of"
            f" {floor_requests} requests, {seconds / max(floor_seconds, 0.1):.1f}x the {floor_seconds:.0f} s"
            f" that {args.lists} profile_count requests take at Klaviyo's 1/s"
        )
        ours.send(("remove", list_ids[2]))
        leaver = ours.recv()
        seconds_left, requests = run(incremental, ours, source())
        show(f"3. after one member left list {list_ids[2]}", seconds_left, requests)
        ours.send(("members",))
        truth = ours.recv()
        with incremental.sql_client() as client:
            loaded = collections.defaultdict(set)
            for list_id, member in client.execute_sql("select list_id, id from list_members"):
                loaded[list_id].add(member)
        ids_reads = requests.get("get_profile_ids_for_list", 0)
        exact = all(loaded[i] == set(truth[i]) for i in list_ids) and leaver not in loaded[list_ids[2]]
        print(
            f"   ids read for that list only: {ids_reads} requests"
            f" ({-(-(args.members_each - 1) // (ids_tier.page_size or 100))} pages of its members);"
            f" table equals Klaviyo's members: {'yes' if exact else 'NO'}"
        )
        if not args.skip_snapshot:
            snapshot = pipeline("snapshot")
            run(snapshot, ours, source(membership="snapshot"))
            seconds_s, requests_s = run(snapshot, ours, source(membership="snapshot"))
            total_s = show("4. second run with membership='snapshot'", seconds_s, requests_s)
            print(
                f"   incremental / snapshot: {total / total_s:.3f} of the requests,"
                f" {seconds / seconds_s:.3f} of the time (snapshot at Klaviyo's 750/min:"
                f" {snapshot_requests} requests, {snapshot_limit_s:.0f} s at least)"
            )
    ours.send(("stop",))
    ours.recv()
    server.join(timeout=10)


if __name__ == "__main__":
    main()
