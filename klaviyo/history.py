"""History in committed chunks, backfills of earlier ranges, and the loop that runs them.

A table with a long backlog (the first load of years of events, a start date far back) is read one
chunk per pipeline run: a contiguous range of its cursor holding about `chunk_rows` rows. The
chunk's rows and the incremental state that ends exactly where the chunk ends are extracted into the
same load package, so dlt commits them together: a kill, a crash or an outage loses at most the
chunk in flight, and the next run starts where the last committed chunk ended. Inside a chunk the
range is read in parallel windows; the chunk ends at the end of the last window handed out, and
every window up to there has been read in full, so the committed cursor never passes an unread row.

A `start_date` earlier than what a table holds is a backfill: the missing range alone is read, in
chunks too, while the table's incremental cursor stays where it was; then the table continues
incrementally. Progress lives beside dlt's state of the table's cursor, under `history`:

    covered_from    the table holds every row from here on (None: from the beginning)
    first_row       the oldest row seen, for progress when history starts at the beginning
    reached/until   a chunked load in progress: rows before `reached` are loaded, `until` is its end
    backfill_from/backfill_reached   a backfill in progress

Run a pipeline until every table is caught up with `load_history`:

    >>> import dlt
    >>> from klaviyo import klaviyo_source
    >>> from klaviyo.history import load_history
    >>> pipeline = dlt.pipeline("klaviyo", destination="duckdb", dataset_name="klaviyo_data")
    >>> load_infos = load_history(pipeline, lambda: klaviyo_source(start_date="2024-01-01"))
"""

import functools
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Sequence, overload

import dlt
from dlt.common import logger
from dlt.common.pipeline import LoadInfo
from dlt.common.time import ensure_pendulum_datetime
from dlt.extract.incremental import Incremental

from .client import interleave
from .tables import Window

Row = Dict[str, Any]
ReadWindow = Callable[[Optional[datetime], Optional[datetime]], Generator[List[Row], None, None]]

DEFAULT_CHUNK_ROWS = 500_000

# A range longer than this many pages reads the rest in parallel windows.
PAGES_BEFORE_WINDOWS = 2

# Each worker gets several windows, so one dense window does not leave the others idle.
WINDOWS_PER_WORKER = 4

STATE_KEY = "history"


# load_history says progress itself; the per-table warning is for bare `pipeline.run` calls (a
# plain attribute, not a thread-local: the source's generators run on dlt's worker threads)
class _Runners:
    on = 0


_RUNNERS = _Runners()


@dataclass
class Chunk:
    """What one run of one table reads: from `start` up to `upper` (None: open-ended), about
    `budget` rows per read; shared by the reads of one table in a run (a table of two metrics
    reads each, and the chunk ends where the earliest of them stopped)."""

    cursor: Window
    state: Dict[str, Any]
    start: Optional[datetime]
    upper: Optional[datetime]
    last: datetime
    budget: int
    backfill_from: Optional[datetime] = None
    covered_from: Optional[datetime] = None
    ended_at: Optional[datetime] = None  # where the chunk ends before `last`; None: it reaches it
    rows: int = 0
    warned: Optional[datetime] = field(default=None, repr=False)

    def read_upper(self) -> Optional[datetime]:
        """The upper bound of the next read: a later metric stops where an earlier one did."""
        if self.ended_at is None:
            return self.upper
        return self.ended_at if self.upper is None else min(self.upper, self.ended_at)

    def end_at(self, moment: datetime) -> None:
        self.ended_at = moment if self.ended_at is None else min(self.ended_at, moment)

    def settle(self, table: str) -> None:
        """Writes where the table stands into its state (and, for the next run, the cursor)."""
        state = self.state
        for key in ("reached", "until", "backfill_from", "backfill_reached"):
            state.pop(key, None)
        state["covered_from"] = _iso(self.covered_from)
        if self.backfill_from is not None:
            if self.ended_at is None:
                state["covered_from"] = _iso(self.backfill_from)
            else:
                state["backfill_from"] = _iso(self.backfill_from)
                state["backfill_reached"] = _iso(self.ended_at)
        elif self.ended_at is not None:
            # the committed cursor: exactly the chunk's end, never a row beyond it
            self.cursor.advance(ensure_pendulum_datetime(self.ended_at))
            state["reached"] = _iso(self.ended_at)
            state["until"] = _iso(self.last)
        if self.ended_at is not None and self.warned != self.ended_at and not _RUNNERS.on:
            self.warned = self.ended_at
            logger.warning(
                f"{progress_line(table, state)}: this run loads history up to there ({self.rows:,} rows);"
                " the next run continues from there (klaviyo.history.load_history runs until caught up)."
            )


def plan(cursor: Optional[Incremental[Any]]) -> Optional[Chunk]:
    """The table's chunk for this run, made on the first read of the run; None where no state is
    kept (no cursor, or an end date: dlt keeps no state for a range with an end) or chunks are off."""
    if not isinstance(cursor, Window) or not cursor.chunk_rows or cursor.end_value is not None:
        return None
    if isinstance(cursor.chunk, Chunk):
        return cursor.chunk
    # kept beside dlt's own cursor state: it is there in any thread (campaigns read on their own),
    # and a refresh that drops the cursor drops it too
    # the state dlt cached when it bound the cursor (its lookup needs dlt's context, which a
    # thread of our own lacks)
    stored: Dict[str, Any] = cursor._cached_state or cursor.get_state()  # type: ignore[assignment]
    state: Dict[str, Any] = stored.setdefault(STATE_KEY, {})
    # tables loaded before chunks existed: their first run's start is dlt's stored initial_value
    covered = (
        _parse(state["covered_from"]) if "covered_from" in state else _as_dt(stored.get("initial_value"))
    )
    requested = _as_dt(cursor.initial_value)
    chunk = Chunk(
        cursor=cursor,
        state=state,
        start=_as_dt(cursor.start_value),
        upper=None,
        last=datetime.now(timezone.utc),
        budget=cursor.chunk_rows,
        covered_from=covered,
    )
    if requested is not None and covered is not None and requested < covered:
        # a backfill: only [requested, covered) is read, and the incremental cursor stays put
        same = _parse(state.get("backfill_from")) == requested
        chunk.start = _parse(state.get("backfill_reached")) if same else requested
        chunk.upper = chunk.last = covered
        chunk.backfill_from = requested
        cursor.advance(cursor.start_value)  # rows before it pass unfiltered
    cursor.chunk = chunk
    return chunk


def backfill_start(cursor: Optional[Incremental[Any]], start: Optional[datetime]) -> Optional[datetime]:
    """Where a read without chunks starts (a stream read whole, e.g. campaigns): at an earlier
    start_date than the table holds, there, with the cursor kept where it was."""
    chunk = plan(cursor)
    if chunk is None or chunk.backfill_from is None:
        return start
    chunk.settle(cursor.resource_name or "" if cursor is not None else "")  # state commits only with the run
    return chunk.start


def read_range(
    read_window: ReadWindow,
    column: Optional[str],
    start: Optional[datetime],
    end: Optional[datetime],
    page_rows: int,
    workers: int,
    windowed: bool,
    chunk: Optional[Chunk] = None,
    table: str = "",
) -> Iterator[List[Row]]:
    """Rows of [start, end) by the cursor `column`; a range longer than a couple of pages is read
    in windows, in parallel; with a `chunk`, from its start on and about its budget of rows.

    A cursor-paged endpoint gives one page at a time, and most incremental runs fit in one page.
    So the first pages are read as usual (sorted by the cursor); only if more remain is the rest of
    the range, from the last cursor value seen, cut into windows that `workers` threads read at
    once. Windows tile the range exactly (>= low, < high); pages arrive out of order, which merge
    and the incremental's max do not mind.
    """
    if chunk is None:
        yield from _read_all(read_window, column, start, end, page_rows, workers, windowed)
        return
    read = _ChunkRead(chunk)
    if not column or not windowed:  # no upper bound on the server: the rest is read in one go
        yield from read.count(read_window(chunk.start, None))
    else:
        yield from _read_chunk(read, read_window, column, page_rows, workers)
    chunk.settle(table)


def _read_all(
    read_window: ReadWindow,
    column: Optional[str],
    start: Optional[datetime],
    end: Optional[datetime],
    page_rows: int,
    workers: int,
    windowed: bool,
) -> Iterator[List[Row]]:
    pages = read_window(start, end)
    head: List[Row] = []
    for rows in itertools.islice(pages, PAGES_BEFORE_WINDOWS):
        head.extend(rows)
        yield rows
    last = end or datetime.now(timezone.utc)
    if (
        workers <= 1
        or not column
        or not windowed
        or len(head) < PAGES_BEFORE_WINDOWS * page_rows
        or head[-1][column] >= last  # the rest is dated after now: Klaviyo refuses such filters
    ):
        yield from pages  # nothing left, or not worth the windows
        return
    pages.close()
    fresh = _unseen(head, column)
    windows = _windows(read_window, _edges(head[-1][column], last, end, workers * WINDOWS_PER_WORKER))
    yield from map(fresh, interleave(windows, workers))


class _ChunkRead:
    """One read of a chunk (one metric of the table): its rows count against the budget."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.rows = 0

    def add(self, rows: List[Row]) -> List[Row]:
        self.rows += len(rows)
        self.chunk.rows += len(rows)
        return rows

    def count(self, pages: Iterator[List[Row]]) -> Iterator[List[Row]]:
        return map(self.add, pages)

    def enough(self) -> bool:
        return self.rows >= self.chunk.budget


def _read_chunk(
    read: _ChunkRead, read_window: ReadWindow, column: str, page_rows: int, workers: int
) -> Iterator[List[Row]]:
    chunk = read.chunk
    start, end = chunk.start, chunk.read_upper()
    last = end or chunk.last
    pages = read_window(start, end)
    head: List[Row] = []
    for rows in itertools.islice(pages, PAGES_BEFORE_WINDOWS):
        head.extend(rows)
        yield read.add(rows)
        if rows and chunk.start is None and "first_row" not in chunk.state:
            chunk.state["first_row"] = _iso(rows[0][column])
        moment = _second(rows[-1][column]) if rows else None
        if read.enough() and moment is not None and (start is None or moment > start) and moment < last:
            pages.close()  # the pages are sorted by the cursor: every row before this second is read
            chunk.end_at(moment)
            return
    if len(head) < PAGES_BEFORE_WINDOWS * page_rows or head[-1][column] >= last:
        yield from read.count(pages)  # the whole range fits
        return
    pages.close()
    fresh = _unseen(head, column)
    # rounds of windows, each sized by the density seen so far, until the budget is read
    first, reached = head[0][column], head[-1][column]
    while True:
        seconds = max((reached - first).total_seconds(), 1.0)
        ahead_seconds = max(chunk.budget - read.rows, 1) * seconds / max(read.rows, 1)
        ahead = timedelta(seconds=min(ahead_seconds, (last - reached).total_seconds() + 1))
        target = max(_second(reached + ahead), _second(reached) + timedelta(seconds=1))
        final = target >= last
        # windows of at least a couple of pages each: a window's last page is mostly partial
        expected = (min(target, last) - reached).total_seconds() * max(read.rows, 1) / seconds
        pieces = max(
            1, min(workers * WINDOWS_PER_WORKER, int(expected // (PAGES_BEFORE_WINDOWS * page_rows)))
        )
        edges = _edges(reached, last, end, pieces) if final else _edges(reached, target, target, pieces)
        handout = _Handout(_windows(read_window, edges), read.enough)
        for rows in interleave(handout, workers):
            yield read.add(fresh(rows))
        if handout.given < len(handout):  # the windows read end at a closed window's end
            chunk.end_at(_as_dt(edges[handout.given]) or last)
            return
        if final:
            return
        if read.enough():
            chunk.end_at(target)
            return
        reached = target


def _unseen(head: List[Row], column: str) -> Callable[[List[Row]], List[Row]]:
    """Drops the rows at the head's last instant that the head already had (snapshots have no merge)."""
    boundary = head[-1][column]
    seen = {row["id"] for row in head if row[column] == boundary}
    return lambda rows: [row for row in rows if row[column] != boundary or row["id"] not in seen]


def _edges(low: datetime, high: datetime, end: Optional[datetime], pieces: int) -> List[Optional[datetime]]:
    """Window edges from `low` to `high`, inner ones on whole seconds (Klaviyo's filters have
    seconds), the last one `end` (None: open, so rows dated in the future still load)."""
    step = max((high - low) / pieces, timedelta(seconds=1))
    inner = sorted({_second(low + step * i) for i in range(1, pieces)})
    return [low, *(edge for edge in inner if low < edge < high), end]


def _windows(
    read_window: ReadWindow, edges: List[Optional[datetime]]
) -> List[Callable[[], Iterator[List[Row]]]]:
    return [functools.partial(read_window, low, high) for low, high in itertools.pairwise(edges)]


class _Handout(Sequence[Callable[[], Iterator[List[Row]]]]):
    """Windows handed to the workers in order, none once `enough()`: the windows read are then
    always a prefix of the range, so the chunk ends where every earlier window is read.
    (It relies on `interleave` taking the next window only when a worker is free.)"""

    def __init__(self, windows: List[Callable[[], Iterator[List[Row]]]], enough: Callable[[], bool]) -> None:
        self.windows = windows
        self.enough = enough
        self.given = 0

    def __len__(self) -> int:
        return len(self.windows)

    @overload
    def __getitem__(self, index: int) -> Callable[[], Iterator[List[Row]]]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Callable[[], Iterator[List[Row]]]]: ...
    def __getitem__(self, index: Any) -> Any:
        return self.windows[index]

    def __iter__(self) -> Iterator[Callable[[], Iterator[List[Row]]]]:
        for window in self.windows:
            if self.given and self.enough():  # at least one window, so every chunk moves on
                return
            self.given += 1
            yield window


def backlog(pipeline: dlt.Pipeline) -> Dict[str, str]:
    """Tables with history left to load, each with a progress line (from the pipeline's state)."""
    left: Dict[str, str] = {}
    for source in (pipeline.state.get("sources") or {}).values():
        for table, resource in (source.get("resources") or {}).items():
            for cursor in (resource.get("incremental") or {}).values():
                state = cursor.get(STATE_KEY) or {}
                if state.get("reached") or state.get("backfill_reached"):
                    left[table] = progress_line(table, state)
    return left


def progress_line(table: str, state: Dict[str, Any]) -> str:
    """E.g. "receive: 2023-04-01 of 2021-01-01..now, 41%" (a backfill: "... of 2020-01-01..2021-01-01")."""
    if state.get("backfill_reached"):
        low, reached, high = state.get("backfill_from"), state["backfill_reached"], state.get("covered_from")
        what = "backfill "
    else:
        low = state.get("covered_from") or state.get("first_row")
        reached, high, what = state.get("reached"), state.get("until"), ""
    if not reached:
        return f"{table}: caught up"
    share = ""
    lo, at, hi = _parse(low), _parse(reached), _parse(high)
    if lo and at and hi and hi > lo:
        share = f", {100 * (at - lo) / (hi - lo):.0f}%"
    until = (high or "now")[:10] if what else "now"
    return f"{table}: {what}{reached[:10]} of {(low or 'the beginning')[:10]}..{until}{share}"


def load_history(
    pipeline: dlt.Pipeline,
    source_factory: Callable[[], Any],
    progress: Optional[Callable[[str], None]] = None,
    max_runs: int = 10_000,
    after_each_run: Optional[Callable[[], None]] = None,
    **run_options: Any,
) -> List[LoadInfo]:
    """Runs `pipeline.run(source_factory(), **run_options)` until no table has history left.

    The first run loads the whole source; the next ones only the tables with history left, one
    committed chunk of each per run. A failed run raises, and
    calling this again continues from the last committed chunk. `progress` gets one line per table
    with backlog after each run (default: the log); at most `max_runs` runs. Returns the LoadInfo
    of each run.

        >>> import dlt
        >>> from klaviyo import klaviyo_source
        >>> from klaviyo.history import load_history
        >>> pipeline = dlt.pipeline("klaviyo", destination="duckdb", dataset_name="klaviyo_data")
        >>> infos = load_history(pipeline, lambda: klaviyo_source(), progress=print)
    """
    say = progress or logger.info
    infos: List[LoadInfo] = []
    _RUNNERS.on += 1
    whole_source_ran = False
    left: Dict[str, str] = {}
    try:
        for _ in range(max_runs):
            pending = pipeline.has_pending_data  # a run after a failure first loads what was extracted
            source = source_factory()
            selected = set(source.selected_resources)
            if whole_source_ran:  # the next chunks: only the tables with backlog
                source = source.with_resources(*left)
            infos.append(pipeline.run(source, **run_options))
            whole_source_ran = whole_source_ran or not pending
            run_options.pop("refresh", None)  # a refresh drops once, not before every chunk
            if after_each_run is not None:
                after_each_run()
            left = {table: line for table, line in backlog(pipeline).items() if table in selected}
            for line in left.values():
                say(line)
            if whole_source_ran and not left:
                break
        else:
            if left:
                logger.warning(f"history not caught up after {max_runs} runs; the next run continues")
    finally:
        _RUNNERS.on -= 1
    return infos


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _iso(value: Any) -> Optional[str]:
    moment = _as_dt(value)
    return moment.isoformat() if moment is not None else None


def _parse(value: Any) -> Optional[datetime]:
    return _as_dt(value) if value else None


def _as_dt(value: Any) -> Optional[datetime]:
    if value is None:
        return None
    return ensure_pendulum_datetime(value)
