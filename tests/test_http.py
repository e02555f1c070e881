"""The HTTP client: rate limits kept on every attempt, the key sent only to base_url."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from klaviyo.client import PROCESS_STATS, KlaviyoClient, RateLimiter
from klaviyo.settings import DEFAULT_REVISION
from tests.helpers import column_values, source_for


def most_in_any_window(stamps: List[float], window: float) -> int:
    """The largest number of stamps that fall in one window of `window` seconds, wherever it starts."""
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t < start + window) for i, start in enumerate(stamps))


def test_the_limiter_never_lets_more_than_burst_per_window_or_steady_per_long_window() -> None:
    # Klaviyo's shape (a burst window inside a longer steady one) at a small scale: 3 in any 0.2 s,
    # 5 in any 1 s; 4 threads ask for 12 permits at once
    limiter = RateLimiter(burst=3, steady=5, burst_window=0.2, steady_window=1.0)
    granted: List[float] = []
    lock = threading.Lock()

    def ask(times: int) -> None:
        for _ in range(times):
            limiter.acquire()
            with lock:
                granted.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=ask, args=(3,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert len(granted) == 12
    assert most_in_any_window(granted, 0.2) <= 3
    assert most_in_any_window(granted, 1.0) <= 5
    # 12 permits at 5 a second need two full steady windows, and the limiter adds little beyond them
    assert 2.0 <= elapsed < 3.5


def test_a_pause_after_a_429_holds_every_caller_of_the_endpoint() -> None:
    limiter = RateLimiter(burst=100, steady=1000)
    limiter.pause(0.4)
    waited = [0.0, 0.0]

    def ask(slot: int) -> None:
        waited[slot] = limiter.acquire()

    threads = [threading.Thread(target=ask, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(0.35 <= w < 1.0 for w in waited)


@pytest.fixture
def foreign_host() -> Iterator[Dict[str, Any]]:
    """Another HTTP server on loopback that records every request it is sent, with its headers."""
    received: List[Dict[str, str]] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            received.append({"path": self.path, **dict(self.headers)})
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.api+json")
            body = b'{"data": [], "links": {"next": null}}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"base_url": f"http://127.0.0.1:{server.server_address[1]}/api", "received": received}
    finally:
        server.shutdown()
        server.server_close()


def test_a_next_link_to_another_host_is_refused_and_the_key_never_sent_there(
    emulator: Any, pipeline: dlt.Pipeline, foreign_host: Dict[str, Any]
) -> None:
    assert len(emulator.account.profile_ids()) > 100  # so the first page of profiles has a next link
    emulator.config.links_base_url = foreign_host["base_url"]
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source_for(emulator).with_resources("profiles"))
    message = str(failure.value)
    assert f"Refusing to send the API key to {foreign_host['base_url']}/profiles" in message
    assert emulator.api_key not in message
    assert foreign_host["received"] == []
    assert [e.status for e in emulator.request_log] == [200]  # the first page, from base_url


def test_klaviyos_real_limits_on_a_3_per_second_endpoint_give_no_429(
    emulator: Any, pipeline: dlt.Pipeline
) -> None:
    account = emulator.account
    emulator.config.rate_limit_scale = 1  # Klaviyo's limits: flow actions and messages 3/s, 60/min
    actions = [a for f in account.flows() for a in account.flow_actions(f["id"])]
    assert len(actions) >= 8, "enough flow actions for more than two seconds' worth of requests"
    held_before = PROCESS_STATS.snapshot()["limiter_wait"]

    pipeline.run(source_for(emulator, workers=4).with_resources("flows", "flow_actions", "flow_messages"))

    message_requests = [e for e in emulator.request_log if e.path.endswith("/flow-messages")]
    assert len(message_requests) == len(actions)
    assert [e for e in emulator.request_log if e.status == 429] == []
    assert PROCESS_STATS.snapshot()["limiter_wait"] > held_before, "the client's limiter did the pacing"
    messages = {m["id"] for a in actions for m in account.flow_messages(a["id"])}
    assert set(column_values(pipeline, "flow_messages")) == messages


def test_a_successful_response_keeps_its_parsed_document_instead_of_its_body(emulator: Any) -> None:
    # dlt's paginator holds each thread's last response while its page waits to be handed on, so a
    # kept body would cost one page's bytes per worker
    client = KlaviyoClient(emulator.api_key, emulator.base_url, DEFAULT_REVISION)
    session = client._rest_client().session

    response = session.get(f"{emulator.base_url}/profiles", params={"page[size]": "5"})

    assert response.status_code == 200
    assert response.content == b""
    rows = response.json()["data"]
    assert len(rows) == 5
    assert {row["id"] for row in rows} <= emulator.account.profile_ids()
