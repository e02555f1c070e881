"""Throughput of the Klaviyo emulator: N pages of 1000 events over one keep-alive connection.

The emulator runs in this process (daemon thread); the client runs in a separate process so the
two do not share the GIL.  Usage: python benchmarks/emulator_throughput.py [--pages 300] [--events 200000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from klaviyo_emulator import AccountSpec, EmulatorConfig, run_emulator  # noqa: E402


def client(base_url: str, headers: dict[str, str], pages: int, out: mp.Queue, full_parse: bool) -> None:  # type: ignore[type-arg]
    import json

    import requests

    s = requests.Session()
    s.headers.update(headers)
    url: str | None = f"{base_url}/events?page[size]=1000&sort=datetime"
    n_pages = n_events = 0
    t0 = time.perf_counter()
    while n_pages < pages:
        if url is None:
            url = f"{base_url}/events?page[size]=1000&sort=datetime"
        r = s.get(url)
        r.raise_for_status()
        n_pages += 1
        if full_parse:
            body = r.json()
            n_events += len(body["data"])
            url = body["links"]["next"]
        else:  # measure the server: only the top-level links object (at the end) is decoded
            content = r.content
            n_events += content.count(b'"type":"event"')
            tail = content[content.rindex(b',"links":{"self"') + 9 : -1]
            url = json.loads(tail)["next"]
    out.put((n_pages, n_events, time.perf_counter() - t0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--full-parse", action="store_true", help="json-decode every page in the client")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = EmulatorConfig(account=AccountSpec(events=args.events, profiles=2000), rate_limit_scale=0)
    with run_emulator(cfg) as emu:
        print(f"account with {args.events} events built in {time.perf_counter() - t0:.1f}s")
        q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        # warm-up pass fills the per-event JSON fragment cache
        warm = mp.Process(
            target=client, args=(emu.base_url, emu.headers(), -(-args.events // 1000), q, False)
        )
        warm.start()
        q.get()
        warm.join()
        p = mp.Process(target=client, args=(emu.base_url, emu.headers(), args.pages, q, args.full_parse))
        p.start()
        pages, events, elapsed = q.get()
        p.join()
    print(
        f"{pages} pages / {events} events in {elapsed:.2f}s: "
        f"{pages / elapsed:.0f} pages/s, {events / elapsed:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
