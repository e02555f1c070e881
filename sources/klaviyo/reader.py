"""The one read path: what to read (a `Query`) and how (a `Reader`: the client and one bound on the
requests a table has in flight, however many lists, batches or windows it reads side by side)."""

import dataclasses
import functools
import itertools
import math
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Sized,
    Tuple,
    TypeVar,
)

from dlt.common import logger
from dlt.common.typing import TDataItem

from .client import KlaviyoClient, KlaviyoNotFound
from .history import Chunk
from .pages import before, cursor_keys, fast_pages, page_table, without_seen
from .settings import ENDPOINTS, Stream
from .tables import PAGE_READS

T = TypeVar("T")

ATTRIBUTION_COLUMNS = (
    "attributed_event_id",
    "campaign_id",
    "campaign_message_id",
    "flow_id",
    "flow_message_id",
)

# A range longer than this many pages reads the rest in parallel windows.
PAGES_BEFORE_WINDOWS = 2

# Windows are sized by the rows they are expected to hold, and come in waves of one per worker:
# windows of equal rows then end together, where a few windows left over would keep a few workers
# busy while the rest idle (at 500 ms per request, 37 windows of 8 pages on 32 workers took two
# windows' time at 24 requests/s). A window's last page is mostly partial, so there are as few
# waves as give windows of about PAGES_PER_WINDOW pages (at most WAVES); a range of fewer pages
# than the workers have is cut into windows of a couple of pages (a read of 10 pages with 32
# workers costs about 10 requests, not 130); and there are enough windows that none spans more
# than SPAN_GROWTH times the stretch whose density is known (up to WAVES per worker), so a history
# that grew denser is still read side by side (free workers split what is left, `_Handout`).
PAGES_PER_WINDOW = 8
SMALLEST_WINDOW_PAGES = 2
WAVES = 4
SPAN_GROWTH = 4

# A chunk's windows run to their ends unless they hold this many times its budget of rows.
OVERSHOOT = 2


@dataclass(frozen=True)
class Query:
    """What to read: a stream, within bounds on its cursor, with filters, under one parent's path."""

    stream: Stream
    start: Optional[datetime] = None  # cursor >= start (strict bounds step back a second)
    end: Optional[datetime] = None  # cursor < end
    filters: Tuple[str, ...] = ()  # further JSON:API filter conditions
    path_id: Optional[str] = None  # the `{id}` of a child endpoint's path
    columns: Mapping[str, Any] = field(default_factory=dict)  # added to every row (the parent's id)

    def between(self, start: Optional[datetime], end: Optional[datetime]) -> "Query":
        return dataclasses.replace(self, start=start, end=end)


class Reader:
    """Reads queries for one table, with at most `workers` requests in flight for all of them.

    Fan-outs may nest (lists, then windows of a long list): each level has its threads, but every
    request takes one of the table's `workers` slots while it is in flight, so `workers` means what
    it says whatever the nesting.
    """

    def __init__(self, client: KlaviyoClient, workers: int) -> None:
        self.client = client
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers)

    def bounded(self, pages: Iterator[T]) -> Iterator[T]:
        """The items of a paging iterator, each request (one `next`) holding a slot."""
        try:
            while True:
                with self._slots:
                    page = next(pages, _DONE)
                if page is _DONE:
                    return
                yield page
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def pages(self, query: Query) -> Iterator[Any]:
        """Every page of the query as rows (`to_row`), in the stream's cursor order; a page of events
        in the spec's shape comes as an Arrow table of the stream's columns instead (pages.py)."""
        stream = query.stream
        params = dict(stream.params)
        if stream.cursor:
            params["sort"] = f"-{stream.cursor}" if stream.descending else stream.cursor
        conditions = [*query.filters, *bound_filters(stream, query.start, query.end)]
        if conditions:
            params["filter"] = ",".join(conditions)
        pages = fast_pages(
            self.client.paginate(stream.endpoint, params, query.path_id), stream, query.columns, _add_included
        )
        with PAGE_READS:
            for page in self.bounded(pages):
                table = page_table(page.data)
                if table is not None:
                    yield table
                    continue
                rows = [to_row(item, stream.cursor) for item in page.data]
                _add_included(rows, page.included)
                if query.columns:
                    for row in rows:
                        row.update(query.columns)
                yield _within_unfiltered_bounds(stream, query, rows)
                if _past_the_start(stream, query, rows):
                    return  # newest first: the rest is older than the lower bound

    def pages_unless_gone(self, query: Query) -> Iterator[List[TDataItem]]:
        """Like `pages`, but none where the path's object is gone (HTTP 404: deleted since it was
        listed, or a campaign without a recipient estimation): one parent does not fail the table."""
        try:
            yield from self.pages(query)
        except KlaviyoNotFound:
            logger.info(f"{query.stream.endpoint} of {query.path_id}: not found (HTTP 404); skipped")

    def read_split(self, query: Query, chunk: Optional[Chunk] = None) -> Iterator[List[TDataItem]]:
        """Like `pages`, but a range longer than a couple of pages is read in windows, in parallel;
        with a `chunk` (history.py), from the chunk's start on and about its budget of rows.

        A cursor-paged endpoint gives one page at a time, and most incremental runs fit in one page.
        So the first pages are read as usual (sorted by the cursor); only if more remain is the rest
        of the range, from the last cursor value seen, cut into windows (`split_windows`) read side
        by side. Pages arrive out of order, which merge and the incremental's max do not mind.

        A chunk's windows come in rounds, each sized by the density seen so far; once its rows are
        read no further window is handed out, and the chunk ends at the end of the last one handed
        out (or, in sorted pages, at the second of the last row): every row before that end is
        read, so the cursor committed there passes no unread row.
        """
        if chunk is None:
            yield from self._read_range(query, _Rows(None))
            return
        yield from self._read_range(query.between(chunk.start, chunk.read_upper()), _Rows(chunk))
        chunk.settle()

    def _read_range(self, query: Query, read: "_Rows") -> Iterator[List[TDataItem]]:
        stream, cursor, chunk = query.stream, query.stream.cursor, read.chunk
        last = query.end or (chunk.last if chunk else datetime.now(timezone.utc))
        windowed = (
            (self.workers > 1 or chunk is not None)  # one worker: windows only to end a chunk
            and bool(stream.windows and cursor and all(stream.cursor_filter))
            and not stream.descending
        )
        pages = self.pages(query)
        head: List[Tuple[Any, Any]] = []  # (cursor, id) of each row: a page may be an Arrow table (pages.py)
        for rows in itertools.islice(pages, PAGES_BEFORE_WINDOWS):
            keys: List[Tuple[Any, Any]] = cursor_keys(rows, cursor) if cursor else [(None, None)] * len(rows)
            head.extend(keys)
            yield read.add(rows)
            if chunk is not None and keys and cursor:
                chunk.note_first(keys[0][0])
            if read.ends_after(rows, query, last):
                pages.close()  # type: ignore[attr-defined]
                return
        full = PAGES_BEFORE_WINDOWS * (ENDPOINTS[stream.endpoint].page_size or 0)
        if not windowed or len(head) < full or head[-1][0] >= last:
            # nothing left, or not worth the windows (the rest dated after now: Klaviyo refuses such filters)
            for rows in pages:
                yield read.add(rows)
                if read.ends_after(rows, query, last):
                    break
            pages.close()  # type: ignore[attr-defined]
            return
        pages.close()  # type: ignore[attr-defined]
        assert cursor is not None
        # rows at the boundary instant that were already read are dropped: snapshots have no merge
        boundary = head[-1][0]
        seen = {row_id for at, row_id in head if at == boundary}
        known_from, reached = head[0][0], boundary
        page_rows = ENDPOINTS[stream.endpoint].page_size or 1
        known_rows = read.rows
        while True:
            # the density of the stretch read last (the first pages, then the last round): what
            # the next round expects, even where the account grew denser over the years
            known = max((reached - known_from).total_seconds(), 1.0)
            density = max(known_rows, 1) / known
            target, pieces = read.next_round(density, known, reached, last, page_rows, self.workers)
            final = target >= last
            until, upper = (last, query.end) if final else (target, target)
            windows = split_windows(reached, until, upper, pieces)
            handout = _Handout(self, query, windows, last, density / page_rows, read.enough, read.too_many)
            rows_before = read.rows
            for rows in self.fan_out(handout):
                yield read.add(without_seen(rows, cursor, boundary, seen))
            if chunk is not None and handout.cut_at is not None:
                not_given = [windows[handout.given][0]] if handout.given < len(windows) else []
                chunk.end_at(min([handout.cut_at, *not_given]))
                return
            if chunk is None or (final and handout.given == len(windows)):
                return
            if handout.given < len(windows):  # the windows read end where the first one not read starts
                chunk.end_at(windows[handout.given][0])
                return
            if read.enough():
                chunk.end_at(target)
                return
            known_rows, known_from, reached = read.rows - rows_before, reached, target
            seen = set()  # later rounds start after the boundary instant

    def fan_out(self, producers: Iterable[Callable[[], Iterator[T]]]) -> Iterator[T]:
        """The producers' items, produced side by side (their requests share the table's slots)."""
        return interleave(producers, self.workers)


class _Rows:
    """The rows of one `read_split`, counted against its chunk's budget (a table of two metrics
    reads each against the budget; the chunk ends where the first of them to stop stopped)."""

    def __init__(self, chunk: Optional[Chunk]) -> None:
        self.chunk = chunk
        self.rows = 0

    def add(self, rows: List[TDataItem]) -> List[TDataItem]:
        self.rows += len(rows)
        if self.chunk is not None:
            self.chunk.rows += len(rows)
        return rows

    def enough(self) -> bool:
        return self.chunk is not None and self.rows >= self.chunk.budget

    def too_many(self) -> bool:
        """Far past the budget: the windows being read stop where they are (`_Handout._cut`)."""
        return self.chunk is not None and self.rows >= OVERSHOOT * self.chunk.budget

    def ends_after(self, rows: List[TDataItem], query: Query, last: datetime) -> bool:
        """Whether the chunk ends after these sorted rows: at the second of the last one, every
        row before it read (a later second, so every chunk moves on)."""
        cursor = query.stream.cursor
        if self.chunk is None or not rows or not cursor or query.stream.descending or not self.enough():
            return False
        moment = _second(cursor_keys(rows[-1:], cursor)[0][0])
        if (query.start is not None and moment <= query.start) or moment >= last:
            return False
        self.chunk.end_at(moment)
        return True

    def next_round(
        self,
        density: float,
        known: float,
        reached: datetime,
        last: datetime,
        page_rows: int,
        workers: int,
    ) -> Tuple[datetime, int]:
        """Where the next round of windows ends and how many windows it has, from the `density`
        (rows a second) of the `known` seconds read last: without a chunk, one round to the end;
        with one, as far as that density says its budget reaches."""
        left = (last - reached).total_seconds() + 1
        ahead = left if self.chunk is None else min(max(self.chunk.budget - self.rows, 1) / density, left)
        target = max(_second(reached + timedelta(seconds=ahead)), _second(reached) + timedelta(seconds=1))
        span = (min(target, last) - reached).total_seconds()
        return target, window_count(span * density / page_rows, span / known, workers)


def window_count(expected_pages: float, span_ratio: float, workers: int) -> int:
    """How many windows a round of about `expected_pages` pages, spanning `span_ratio` times the
    stretch whose density is known, is cut into (see PAGES_PER_WINDOW)."""
    if expected_pages >= workers * SMALLEST_WINDOW_PAGES:
        pieces = workers * min(WAVES, math.ceil(expected_pages / (workers * PAGES_PER_WINDOW)))
    else:
        pieces = int(expected_pages // SMALLEST_WINDOW_PAGES)
    return max(1, min(workers * WAVES, max(pieces, math.ceil(span_ratio / SPAN_GROWTH))))


class _Window:
    """A window of a round, [low, high) on the cursor, read by one worker; a split lowers `high`
    (its reader then stops there) and hands the rest to another worker."""

    def __init__(self, low: datetime, high: Optional[datetime]) -> None:
        self.low = low
        self.high = high  # None: open-ended
        self.query_high = high  # the bound its pages were asked with
        self.at = low  # the cursor of the last row read
        self.rows = 0
        self.done = False


class _Handout:
    """The windows of a round handed to the workers in order, none once `enough()` (after the
    first): the windows given are then always a prefix of the range, so a chunk ends where every
    earlier window is read. It relies on `interleave` taking the next window only when a worker is
    free. When every window is given, a free worker takes the second half of what the window with
    the most rows left has to read (work stealing): a window far denser than its round expected
    (a history that grew) is then read side by side instead of by one worker while the rest idle.
    A piece counts as given with the window it came from, so the prefix stays the same."""

    def __init__(
        self,
        reader: "Reader",
        query: Query,
        windows: Sequence[Tuple[datetime, Optional[datetime]]],
        last: datetime,
        pages_per_second: float,
        enough: Callable[[], bool],
        too_many: Callable[[], bool],
    ) -> None:
        self.reader, self.query, self.last = reader, query, last
        self.too_many = too_many
        self.windows = [_Window(low, high) for low, high in windows]
        self.pieces: List[_Window] = []  # split off windows given
        self.pages_per_second = pages_per_second  # the round's estimate, for windows not begun
        self.enough = enough
        self.given = 0
        self.cut_at: Optional[datetime] = None  # where a chunk that read far past its budget ends
        self._lock = threading.Condition()  # notified as windows read pages and end
        self._page_rows = ENDPOINTS[query.stream.endpoint].page_size or 1

    def __len__(self) -> int:
        """The threads worth starting: one per window, or per worker where free workers split."""
        return max(len(self.windows), self.reader.workers)

    def __iter__(self) -> Iterator[Callable[[], Iterator[Any]]]:
        while True:
            with self._lock:
                window = self._next()
            if window is None:
                return
            yield functools.partial(self._read, window)

    def _next(self) -> Optional[_Window]:
        """The next window, else a piece split off one being read; waits while none is worth
        splitting yet (a window's density shows after its first page), until all are read."""
        if self.given < len(self.windows):
            if self.given and self.enough():
                return None
            self.given += 1
            return self.windows[self.given - 1]
        while True:
            piece = self._split()
            if piece is not None:
                return piece
            if all(window.done for window in [*self.windows, *self.pieces]):
                return None
            self._lock.wait(0.1)

    def _cut(self) -> None:
        """A chunk that has read far more rows than its budget (its round fell on rows far denser
        than the stretch before: a history that grew) ends now: each window being read stops
        after the second of its last row (one not begun, at once), and the chunk ends where the
        first of them stops, every row before that read. Rows the later windows read beyond it
        are read again by the next chunk (merge keeps one of each), which is why a round that
        merely ends a little past the budget is not cut."""
        cuts = []
        for window in [*self.windows[: self.given], *self.pieces]:
            if window.done:
                continue
            cut = window.low if not window.rows else _second(window.at) + timedelta(seconds=1)
            window.high = cut if window.high is None else min(cut, window.high)
            cuts.append(window.high)
        self.cut_at = min(cuts) if cuts else None

    def _split(self) -> Optional[_Window]:
        """The second half of what the busiest window has left, if that is two pages at least."""
        if self.cut_at is not None:
            return None
        busiest, most = None, 2.0
        for window in [*self.windows[: self.given], *self.pieces]:
            high = self.last if window.high is None else window.high
            if window.done or (high - window.at).total_seconds() < 2:
                continue
            read_for = (window.at - window.low).total_seconds()
            per_second = (
                window.rows / self._page_rows / read_for
                if window.rows and read_for >= 1
                else self.pages_per_second
            )
            left = (high - window.at).total_seconds() * per_second
            if left > most:
                busiest, most = window, left
        if busiest is None:
            return None
        high = self.last if busiest.high is None else busiest.high
        middle = max(
            _second(busiest.at + (high - busiest.at) / 2), _second(busiest.at) + timedelta(seconds=1)
        )
        if middle >= high:
            return None
        piece = _Window(middle, busiest.high)
        busiest.high = middle
        self.pieces.append(piece)  # part of a window given: the given prefix does not change
        return piece

    def _read(self, window: _Window) -> Iterator[Any]:
        cursor = self.query.stream.cursor
        assert cursor is not None
        pages = self.reader.pages(self.query.between(window.low, window.query_high))
        try:
            for rows in pages:
                with self._lock:
                    high = window.high
                past = False
                if high is not None and high != window.query_high:  # split: stop where the piece begins
                    rows, past = before(rows, cursor, high)
                keys = cursor_keys(rows[-1:], cursor) if len(rows) else []
                with self._lock:
                    window.rows += len(rows)
                    if keys and keys[-1][0] is not None and keys[-1][0] > window.at:
                        window.at = keys[-1][0]
                    if self.cut_at is None and self.too_many():
                        self._cut()
                    self._lock.notify_all()
                yield rows
                if past:
                    return
        finally:
            with self._lock:
                window.done = True
                self._lock.notify_all()
            pages.close()  # type: ignore[attr-defined]


def split_windows(
    start: datetime, last: datetime, end: Optional[datetime], pieces: int
) -> List[Tuple[datetime, Optional[datetime]]]:
    """Up to `pieces` windows that tile [start, end) exactly (>= low, < high), evenly up to `last`,
    inner edges on whole seconds (Klaviyo's filters have seconds); the last one is open-ended
    unless an `end` was asked for, so rows dated in the future still load."""
    step = max((last - start) / pieces, timedelta(seconds=1))
    inner = sorted({_second(start + step * i) for i in range(1, pieces)})
    edges: List[Optional[datetime]] = [start, *(edge for edge in inner if start < edge < last), end]
    return [(low, high) for low, high in itertools.pairwise(edges) if low is not None]


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _past_the_start(stream: Stream, query: Query, rows: List[TDataItem]) -> bool:
    """Whether a stream read newest first, that the server cannot filter, has reached the start."""
    if not (stream.descending and stream.cursor and query.start and rows):
        return False
    oldest = rows[-1].get(stream.cursor)
    return oldest is not None and oldest < query.start


def _within_unfiltered_bounds(stream: Stream, query: Query, rows: List[TDataItem]) -> List[TDataItem]:
    """The rows inside the query's bounds where the server cannot filter on the cursor."""
    lower, upper = stream.cursor_filter
    cursor = stream.cursor
    if cursor is None or ((lower or query.start is None) and (upper or query.end is None)):
        return rows
    start = None if lower else query.start
    end = None if upper else query.end
    return [
        row
        for row in rows
        if row.get(cursor) is None
        or ((start is None or row[cursor] >= start) and (end is None or row[cursor] < end))
    ]


def filter_time(value: datetime) -> str:
    """Klaviyo wants filter datetimes unquoted, ISO 8601, in UTC."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def bound_filters(stream: Stream, start: Optional[datetime], end: Optional[datetime]) -> List[str]:
    """Server-side bounds on the cursor, so only rows in the window cross the network."""
    if stream.cursor is None:
        return []
    lower_op, upper_op = stream.cursor_filter
    conditions = []
    if lower_op and start is not None:
        if lower_op == "greater-than":
            # strict bound: the last second is read again and merge drops what was already loaded
            start -= timedelta(seconds=1)
        conditions.append(f"{lower_op}({stream.cursor},{filter_time(start)})")
    if upper_op and end is not None:
        conditions.append(f"{upper_op}({stream.cursor},{filter_time(end)})")
    return conditions


def to_row(item: Mapping[str, Any], cursor: Optional[str] = None) -> Dict[str, Any]:
    """A JSON:API resource as a table row: `id`, every attribute, `<relation>_id` for to-one relations."""
    row: Dict[str, Any] = {"id": item.get("id")}
    attributes = item.get("attributes")
    if attributes:
        row.update(attributes)
    for name, relation in (item.get("relationships") or {}).items():
        if not isinstance(relation, dict) or "data" not in relation:
            continue
        related = relation["data"]
        if isinstance(related, list):
            if name == "attributions":  # resolved from `included` by _add_included
                row["attribution_ids"] = [r.get("id") for r in related]
        else:
            row[_relation_column(name)] = related.get("id") if related else None
    if cursor and isinstance(row.get(cursor), str):
        row[cursor] = datetime.fromisoformat(row[cursor].replace("Z", "+00:00"))
    return row


@functools.lru_cache(maxsize=256)
def _relation_column(relation: str) -> str:
    return relation.replace("-", "_") + "_id"


def integration_key(metric: Mapping[str, Any]) -> Optional[str]:
    integration = metric.get("integration")
    return integration.get("key") if isinstance(integration, dict) else None


def _add_included(rows: List[Dict[str, Any]], included: List[Dict[str, Any]]) -> None:
    """Resolves what `include=` brought along into plain columns: an event's metric name and
    integration, and what the event is attributed to (campaign or flow, message, earlier event)."""
    metrics = {
        i["id"]: {"metric_name": attributes.get("name"), "metric_integration": integration_key(attributes)}
        for i in included
        if i.get("type") == "metric"
        for attributes in [i.get("attributes") or {}]
    }
    attributions = {i["id"]: to_row(i) for i in included if i.get("type") == "attribution"}
    for row in rows:
        metric = metrics.get(row.get("metric_id"))
        if metric is not None:
            row.update(metric)
        for attribution_id in row.pop("attribution_ids", ()):
            attribution = attributions.get(attribution_id)
            if attribution is not None:  # the first one: Klaviyo credits one message per event
                row.update({k: v for k, v in attribution.items() if k in ATTRIBUTION_COLUMNS})
                break


_DONE: Any = object()


def interleave(producers: Iterable[Callable[[], Iterator[T]]], workers: int, buffer: int = 8) -> Iterator[T]:
    """Runs the producers on `workers` threads and yields their items as they arrive.

    At most `buffer` items wait to be consumed, so pages flow through instead of piling up. The
    first error of any producer is raised here; closing the generator stops the threads.
    """
    count = len(producers) if isinstance(producers, Sized) else workers
    if workers <= 1 or count <= 1:
        for produce in producers:
            yield from produce()
        return
    items: queue.Queue[Any] = queue.Queue(maxsize=buffer)
    pending = iter(producers)
    lock = threading.Lock()
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                with lock:
                    produce = next(pending, None)
                if produce is None:
                    break
                for item in produce():
                    if not put(item):
                        return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failure(exc))
        finally:
            put(_DONE)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, count))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = items.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, _Failure):
                raise item.error
            else:
                yield item
    finally:
        stop.set()


class _Failure(NamedTuple):
    error: BaseException
