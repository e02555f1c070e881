"""The read path against a fake client: windows, boundary rows, fan-outs and the bound on requests
in flight. The fake pages an in-memory collection and filters and sorts it as Klaviyo would."""

import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Mapping, Optional

import pytest

from klaviyo.client import Page
from klaviyo.reader import Query, Reader, split_windows
from klaviyo.settings import ENDPOINTS, Stream, _columns

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
CONDITION = re.compile(r"([a-z-]+)\(([\w.]+),([^)]*)\)")
OPERATORS = {
    "greater-or-equal": lambda value, bound: value >= bound,
    "greater-than": lambda value, bound: value > bound,
    "less-than": lambda value, bound: value < bound,
}
# templates page 10 rows at a time: a long range is a few dozen rows
WINDOWED = Stream("templates", cursor="datetime", windows=True)


class FakeClient:
    """Pages `rows` ({id, datetime}) like Klaviyo; counts the requests it has in flight at once."""

    def __init__(self, rows: List[Dict[str, Any]], latency: float = 0.002) -> None:
        self.rows = rows
        self.latency = latency
        self.requests: List[Mapping[str, str]] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def paginate(
        self, endpoint: str, params: Optional[Mapping[str, str]] = None, path_id: Optional[str] = None
    ) -> Iterator[Page]:
        params = dict(params or {})
        cursor = params.get("sort", "datetime").lstrip("-")
        matching = [row for row in self.rows if self._matches(row, params.get("filter", ""))]
        matching.sort(
            key=lambda row: (row[cursor], row["id"]), reverse=params.get("sort", "").startswith("-")
        )
        size = ENDPOINTS[endpoint].page_size or 100
        for offset in range(0, max(len(matching), 1), size):
            self._request(params)
            items = [
                {"id": row["id"], "attributes": {cursor: row[cursor].isoformat()}}
                for row in matching[offset : offset + size]
            ]
            yield Page(items, [])

    def _request(self, params: Mapping[str, str]) -> None:
        with self._lock:
            self.requests.append(params)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.latency)
        with self._lock:
            self.in_flight -= 1

    @staticmethod
    def _matches(row: Mapping[str, Any], filters: str) -> bool:
        for operator, name, value in CONDITION.findall(filters):
            if not OPERATORS[operator](row[name], datetime.fromisoformat(value)):
                return False
        return True


def rows_every(seconds: float, count: int, start: datetime = T0) -> List[Dict[str, Any]]:
    return [{"id": f"r{i:04d}", "datetime": start + timedelta(seconds=seconds * i)} for i in range(count)]


def ids(pages: Iterator[List[Dict[str, Any]]]) -> List[str]:
    return [row["id"] for rows in pages for row in rows]


@pytest.mark.parametrize("end", [None, T0 + timedelta(days=2)])
def test_windows_tile_the_range_without_gap_or_overlap(end: Optional[datetime]) -> None:
    windows = split_windows(T0, T0 + timedelta(days=1), end, 16)

    assert len(windows) == 16
    assert windows[0][0] == T0
    assert all(high == next_low for (_, high), (next_low, _) in zip(windows, windows[1:], strict=False))
    assert windows[-1][1] == end  # open-ended without an end: rows dated later still load


def test_a_long_range_is_read_in_parallel_windows_and_every_row_once() -> None:
    account = rows_every(60, 300)
    client = FakeClient(account)

    read = ids(Reader(client, workers=4).read_split(Query(WINDOWED, T0, T0 + timedelta(days=1))))

    assert sorted(read) == [row["id"] for row in account]
    assert len({params["filter"] for params in client.requests}) > 2  # the head, then windows
    assert client.peak > 1


@pytest.mark.parametrize("pages", [10, 30, 100])
def test_many_workers_read_a_range_in_about_as_many_requests_as_it_has_pages(pages: int) -> None:
    # one row a minute up to the end of the range, templates page 10 rows: `pages` full pages
    account = rows_every(60, pages * 10)
    client = FakeClient(account)
    end = T0 + timedelta(minutes=pages * 10)

    read = ids(Reader(client, workers=32).read_split(Query(WINDOWED, T0, end)))

    assert sorted(read) == [row["id"] for row in account]
    # each window ends in a partial page: at most one more request per window, and windows hold
    # a couple of pages at least (equal time spans, 4 per worker, made 130 requests of 10 pages)
    assert len(client.requests) <= pages * 1.5 + 2
    assert client.peak > 1


def test_a_history_that_grew_denser_is_still_read_side_by_side() -> None:
    # a sparse year (one row a day), then a dense week (one row a minute): the first pages see
    # the sparse density, so the dense week falls into one window, which free workers split
    sparse = rows_every(86_400, 365)
    week = T0 + timedelta(days=365)
    dense = rows_every(60, 7 * 1440, start=week)
    for index, row in enumerate(dense):
        row["id"] = f"d{index:05d}"
    client = FakeClient(sparse + dense)

    read = ids(Reader(client, workers=8).read_split(Query(WINDOWED, T0, T0 + timedelta(days=380))))

    assert len(read) == len(set(read)) == len(sparse) + len(dense)
    lower_bounds = {
        datetime.fromisoformat(value)
        for params in client.requests
        for operator, _, value in CONDITION.findall(params["filter"])
        if operator == "greater-or-equal"
    }
    assert len([low for low in lower_bounds if low >= week]) >= 4  # the week, in pieces
    assert client.peak >= 4
    assert len(client.requests) <= 1.1 * len(read) / 10 + 20  # 10 rows a page


def test_rows_at_the_boundary_instant_of_the_first_pages_are_read_once() -> None:
    # rows 15..24 share one instant: the second page (10 rows each) ends inside that group
    account = rows_every(60, 200)
    for row in account[15:25]:
        row["datetime"] = account[15]["datetime"]
    client = FakeClient(account)

    read = ids(Reader(client, workers=4).read_split(Query(WINDOWED, T0, T0 + timedelta(days=1))))

    assert len(read) == len(set(read)) == len(account)


def test_nested_fan_outs_keep_the_tables_requests_in_flight_within_workers() -> None:
    client = FakeClient(rows_every(30, 400))
    reader = Reader(client, workers=3)
    lists = [lambda: reader.read_split(Query(WINDOWED, T0, T0 + timedelta(days=1))) for _ in range(5)]

    read = ids(reader.fan_out(lists))

    assert len(read) == 5 * 400
    assert 2 <= client.peak <= 3


def test_a_fan_out_raises_the_error_of_any_producer() -> None:
    def failing() -> Iterator[List[str]]:
        yield ["fine"]
        raise RuntimeError("list 2 failed")

    producers = [lambda: iter([["a"], ["b"]]), failing, lambda: iter([["c"]])]
    with pytest.raises(RuntimeError, match="list 2 failed"):
        list(Reader(FakeClient([]), workers=3).fan_out(producers))


def test_closing_a_fan_out_stops_its_producers() -> None:
    produced = []

    def endless() -> Iterator[int]:
        while True:
            produced.append(1)
            yield 1

    items = Reader(FakeClient([]), workers=2).fan_out([endless, endless])
    next(items)
    items.close()
    time.sleep(0.3)
    stopped_at = len(produced)
    time.sleep(0.3)

    assert len(produced) == stopped_at


def test_a_stream_sorted_newest_first_that_cannot_be_filtered_stops_at_the_cursor() -> None:
    # like reviews: sorted on `updated`, which the server cannot filter on
    stream = Stream("templates", cursor="datetime", cursor_filter=(None, None), descending=True)
    account = rows_every(60, 100)
    since = account[70]["datetime"]
    client = FakeClient(account)

    read = ids(Reader(client, workers=4).read_split(Query(stream, since)))

    assert sorted(read) == [row["id"] for row in account[70:]]
    assert len(client.requests) == 4  # pages of 10 down to the cursor, not all 10 pages
    assert all("filter" not in params and params["sort"] == "-datetime" for params in client.requests)


def test_a_stream_without_column_hints_types_its_keys_parent_and_cursor() -> None:
    stream = Stream("push_tokens", cursor="updated", parent="lists")

    assert _columns("no_hints", stream) == {
        "id": "text",
        "list_id": "text",
        "updated": "timestamp",
        "extra_attributes": "json",
    }
