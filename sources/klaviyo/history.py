"""History in committed chunks, backfills of earlier ranges, and the loop that runs them.

A table with a long backlog (the first load of years of events, a start date far back) is read one
chunk per pipeline run: a contiguous range of its cursor holding about `chunk_rows` rows. The
chunk's rows and the incremental state that ends exactly where the chunk ends are extracted into the
same load package, so dlt commits them together: a kill, a crash or an outage loses at most the
chunk in flight, and the next run starts where the last committed chunk ended. The reader
(`Reader.read_split`) reads a chunk's range in parallel windows; the chunk ends at the end of the
last window handed out, and every window up to there has been read in full, so the committed
cursor never passes an unread row.

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

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

import dlt
from dlt.common import logger
from dlt.common.pipeline import LoadInfo
from dlt.common.time import ensure_pendulum_datetime
from dlt.extract.incremental import Incremental

from .settings import DEFAULT_CHUNK_ROWS
from .tables import Window

__all__ = ["Chunk", "DEFAULT_CHUNK_ROWS", "backlog", "load_history", "plan", "progress_line"]

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

    def note_first(self, moment: datetime) -> None:
        """The oldest row of a history read from the beginning: where its progress counts from."""
        if self.start is None and "first_row" not in self.state:
            self.state["first_row"] = _iso(moment)

    def settle(self) -> None:
        """Writes where the table stands into its state (and, for the next run, the cursor)."""
        table = self.cursor.resource_name or "table"
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
    chunk.settle()  # the state commits only with the run's load
    return chunk.start


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


def _iso(value: Any) -> Optional[str]:
    moment = _as_dt(value)
    return moment.isoformat() if moment is not None else None


def _parse(value: Any) -> Optional[datetime]:
    return _as_dt(value) if value else None


def _as_dt(value: Any) -> Optional[datetime]:
    if value is None:
        return None
    return ensure_pendulum_datetime(value)
