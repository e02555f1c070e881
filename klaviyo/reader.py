"""The one read path: what to read (a `Query`) and how (a `Reader`: the client and one bound on the
requests a table has in flight, however many lists, batches or windows it reads side by side)."""

import dataclasses
import functools
import itertools
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

from dlt.common import logger
from dlt.common.typing import TDataItem

from .client import KlaviyoClient, KlaviyoNotFound
from .pages import UniqueRows, cursor_keys, fast_pages, page_table, without_seen
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

# Each worker gets several windows, so one dense window does not leave the others idle.
WINDOWS_PER_WORKER = 4


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
        # event rows are declared unique to dlt's merge: each query's pages are checked (pages.py)
        unique = UniqueRows(stream, query.start, query.end)
        pages = fast_pages(
            self.client.paginate(stream.endpoint, params, query.path_id), stream, query.columns, _add_included
        )
        with PAGE_READS:
            for page in self.bounded(pages):
                table = page_table(page.data)
                if table is not None:
                    yield unique(table)
                    continue
                rows = [to_row(item, stream.cursor) for item in page.data]
                _add_included(rows, page.included)
                if query.columns:
                    for row in rows:
                        row.update(query.columns)
                yield unique(_within_unfiltered_bounds(stream, query, rows))
                if _past_the_start(stream, query, rows):
                    return  # newest first: the rest is older than the lower bound

    def pages_unless_gone(self, query: Query) -> Iterator[List[TDataItem]]:
        """Like `pages`, but none where the path's object is gone (HTTP 404: deleted since it was
        listed, or a campaign without a recipient estimation): one parent does not fail the table."""
        try:
            yield from self.pages(query)
        except KlaviyoNotFound:
            logger.info(f"{query.stream.endpoint} of {query.path_id}: not found (HTTP 404); skipped")

    def read_split(self, query: Query) -> Iterator[List[TDataItem]]:
        """Like `pages`, but a range longer than a couple of pages is read in windows, in parallel.

        A cursor-paged endpoint gives one page at a time, and most incremental runs fit in one page.
        So the first pages are read as usual (sorted by the cursor); only if more remain is the rest
        of the range, from the last cursor value seen, cut into windows (`split_windows`) read side
        by side. Pages arrive out of order, which merge and the incremental's max do not mind.
        """
        stream = query.stream
        pages = self.pages(query)
        head: List[Tuple[Any, Any]] = []  # (cursor, id) of each row; speed hook: a page may be a table
        for rows in itertools.islice(pages, PAGES_BEFORE_WINDOWS):
            head.extend(cursor_keys(rows, stream.cursor) if stream.cursor else [(None, None)] * len(rows))
            yield rows
        full = PAGES_BEFORE_WINDOWS * (ENDPOINTS[stream.endpoint].page_size or 0)
        last = query.end or datetime.now(timezone.utc)
        if (
            self.workers <= 1
            or not (stream.windows and stream.cursor and all(stream.cursor_filter))
            or stream.descending
            or len(head) < full
            or head[-1][0] >= last  # the rest is dated after now: Klaviyo refuses such filters
        ):
            yield from pages  # nothing left, or not worth the windows
            return
        pages.close()  # type: ignore[attr-defined]
        # rows at the boundary instant that were already read are dropped: snapshots have no merge
        cursor = stream.cursor
        boundary = head[-1][0]  # speed hook: (cursor, id) pairs, see `cursor_keys`
        seen = {row_id for at, row_id in head if at == boundary}
        windows = split_windows(boundary, last, query.end, self.workers * WINDOWS_PER_WORKER)
        reads = [functools.partial(self.pages, query.between(low, high)) for low, high in windows]
        for rows in self.fan_out(reads):
            yield without_seen(rows, cursor, boundary, seen)  # speed hook: rows or a table

    def fan_out(self, producers: Sequence[Callable[[], Iterator[T]]]) -> Iterator[T]:
        """The producers' items, produced side by side (their requests share the table's slots)."""
        return interleave(producers, self.workers)


def split_windows(
    start: datetime, last: datetime, end: Optional[datetime], pieces: int
) -> List[Tuple[datetime, Optional[datetime]]]:
    """`pieces` windows that tile [start, end) exactly (>= low, < high), evenly up to `last`; the
    last one is open-ended unless an `end` was asked for, so rows dated in the future still load."""
    step = (last - start) / pieces
    edges: List[Optional[datetime]] = [start + step * i for i in range(pieces)]
    edges.append(end)
    return [(low, high) for low, high in itertools.pairwise(edges) if low is not None]


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


def interleave(producers: Sequence[Callable[[], Iterator[T]]], workers: int, buffer: int = 8) -> Iterator[T]:
    """Runs the producers on `workers` threads and yields their items as they arrive.

    At most `buffer` items wait to be consumed, so pages flow through instead of piling up. The
    first error of any producer is raised here; closing the generator stops the threads.
    """
    if workers <= 1 or len(producers) <= 1:
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

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(producers)))]
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
