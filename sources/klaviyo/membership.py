"""List and segment membership: a few requests per list when nothing changed, exact when something did.

Klaviyo has no feed of who left a list, and reading every member again costs a request per 100
members each run. So each run (the default, `membership="incremental"`):

1. reads the members who joined since the last run (`joined_group_at`, one request per list when
   none did);
2. checks each list that could have lost members: either by its `profile_count` (one request, but
   Klaviyo allows only 1/s and 15/min of those) against the members loaded, or, where that is
   quicker, by reading the ids of its members (`/relationships/profiles`, 100 a request at 750/min);
3. only for a list whose numbers disagree, reads the ids of its members and writes who left:
   `removed_members="drop"` deletes their rows, `"mark"` keeps them with `removed_at` (the run
   that saw them gone) and, where the person was deleted from Klaviyo, `deleted_at`.

The members loaded so far are kept in the resource's dlt state (id and join time, compressed), so
this works on every destination and never reads the destination back.
"""

import base64
import functools
import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import dlt
from dlt.common import logger
from dlt.common.schema.typing import TColumnSchema
from dlt.common.typing import TDataItem

from .client import KlaviyoNotFound
from .reader import Query, Reader, filter_time
from .settings import COLUMN_TYPES, ENDPOINTS, STREAMS

MEMBERSHIP_MODES = ("incremental", "snapshot")
REMOVED_MEMBERS = ("drop", "mark")


@dataclass(frozen=True)
class Group:
    """A kind of profile group whose members are a table (its row of STREAMS names the parent)."""

    table: str  # the members' stream
    ids_endpoint: str  # members' ids only
    count_endpoint: str  # the group itself, with `profile_count`

    @property
    def parent(self) -> str:  # the groups' stream: "lists"
        return STREAMS[self.table].parent or ""

    @property
    def parent_type(self) -> str:  # its JSON:API type: "list"
        return self.parent[:-1]

    @property
    def key(self) -> str:  # the column naming the group: "list_id"
        return STREAMS[self.table].parent_key

    def members(
        self, parent_id: str, start: Optional[datetime] = None, end: Optional[datetime] = None
    ) -> Query:
        """The members of one group who joined in [start, end), read like any stream."""
        return Query(STREAMS[self.table], start, end, path_id=parent_id, columns={self.key: parent_id})


GROUPS: Dict[str, Group] = {
    "list_members": Group("list_members", "list_profile_ids", "list_profile_count"),
    "segment_members": Group("segment_members", "segment_profile_ids", "segment_profile_count"),
}

# profiles looked up per request (an `any(id,[...])` filter, one page of 100)
PROFILES_PER_LOOKUP = 100


def column_types(table: str, membership: str, removed: str) -> Mapping[str, Any]:
    """The table's columns: the stream's, plus `removed_at` (and `deleted_at` when marking)."""
    if membership == "snapshot":
        return COLUMN_TYPES[table]
    extra = (
        {"removed_at": "timestamp", "deleted_at": "timestamp"}
        if removed == "mark"
        else {"removed_at": "timestamp"}
    )
    return {**COLUMN_TYPES[table], **extra}


def column_hints(membership: str, removed: str) -> Dict[str, TColumnSchema]:
    """dlt hints: with "drop", a row carrying `removed_at` deletes the member's row (dlt's hard delete)."""
    if membership == "snapshot":
        return {}
    hints: Dict[str, TColumnSchema] = {"removed_at": {"data_type": "timestamp", "nullable": True}}
    # set both ways: a table loaded with "drop" before must not keep deleting rows marked later
    hints["removed_at"]["hard_delete"] = removed == "drop"
    if removed == "mark":
        hints["deleted_at"] = {"data_type": "timestamp", "nullable": True}
    return hints


def checked_options(membership: str, removed_members: str) -> None:
    if membership not in MEMBERSHIP_MODES:
        raise ValueError(
            f"membership={membership!r} must be one of {', '.join(map(repr, MEMBERSHIP_MODES))}."
        )
    if removed_members not in REMOVED_MEMBERS:
        raise ValueError(
            f"removed_members={removed_members!r} must be 'drop' (delete the rows of members who left)"
            " or 'mark' (keep them with `removed_at`)."
        )


@dataclass
class Members:
    """The members of one group as loaded: id -> `joined_group_at` in microseconds since the epoch."""

    joined: Dict[str, int] = field(default_factory=dict)
    since: Optional[str] = None  # the latest join loaded (ISO), where the next run reads from
    new: bool = True  # not in the state: read whole this run, nothing to compare
    gone: bool = False  # the group was deleted
    left: Dict[str, int] = field(default_factory=dict)  # members found gone this run
    saved: Optional[Dict[str, Any]] = None  # the state it came from, written back when unchanged
    changed: bool = False  # members joined or left this run

    def to_state(self) -> Dict[str, Any]:
        if self.saved is not None and not self.changed:
            return {**self.saved, "since": self.since}
        lines = "\n".join(f"{member} {joined}" for member, joined in sorted(self.joined.items()))
        packed = base64.b64encode(zlib.compress(lines.encode())).decode()
        return {"since": self.since, "members": packed}

    @classmethod
    def from_state(cls, saved: Mapping[str, Any]) -> "Members":
        text = zlib.decompress(base64.b64decode(saved["members"])).decode()
        joined = {member: int(at) for member, at in (line.split(" ") for line in text.splitlines())}
        return cls(joined, saved.get("since"), new=False, saved=dict(saved))


def member_rows(
    reader: Reader,
    table: str,
    membership: str,
    removed: str,
    snapshot_hints: Callable[[], Iterator[TDataItem]],
) -> Iterator[TDataItem]:
    """Every member of every list (segment): the profile's columns, the group's id, `joined_group_at`.

    membership="snapshot" reads every member and replaces the table each run; "incremental" is
    described in this module's docstring. Every request goes through the table's `reader`, so
    the table has at most `workers` in flight however many groups and windows it reads at once.
    """
    yield dlt.mark.materialize_table_schema()
    group = GROUPS[table]
    parent_pages = reader.client.paginate(
        STREAMS[group.parent].endpoint, {f"fields[{group.parent_type}]": "name"}
    )
    parents = [item["id"] for page in reader.bounded(parent_pages) for item in page.data]
    if membership == "snapshot":
        # what incremental runs kept is stale after a snapshot: the next one starts afresh
        dlt.current.resource_state().pop("groups", None)
        yield from snapshot_hints()
        yield from reader.fan_out([functools.partial(_everyone, reader, group, p) for p in parents])
        return
    state = dlt.current.resource_state()
    saved: Dict[str, Any] = state.get("groups") or {}
    groups = {p: Members.from_state(saved[p]) if p in saved else Members() for p in parents}
    gone = {p: Members.from_state(m) for p, m in saved.items() if p not in groups}
    for members in gone.values():
        members.gone = True
    now = datetime.now(timezone.utc)
    to_count, _ = _checks(group, {p: m for p, m in groups.items() if not m.new and m.joined})
    syncs = [functools.partial(_sync, reader, group, p, groups[p], p in to_count, now) for p in parents]
    yield from reader.fan_out(syncs)
    left: List[Tuple[str, str, int]] = []
    for parent_id, members in [*groups.items(), *gone.items()]:
        if members.gone:
            logger.info(f"{table}: {group.parent_type} {parent_id} is gone; its members count as left")
            members.left.update(members.joined)
            members.joined.clear()
        left.extend((parent_id, member, joined) for member, joined in members.left.items())
    yield from _leaver_rows(reader, group, left, removed, now)
    state["groups"] = {p: m.to_state() for p, m in groups.items() if not m.gone}


def _everyone(reader: Reader, group: Group, parent_id: str) -> Iterator[List[TDataItem]]:
    """One group's members, all of them (membership="snapshot")."""
    try:
        yield from reader.read_split(group.members(parent_id))
    except KlaviyoNotFound:
        logger.warning(f"{group.parent_type} {parent_id} was deleted while loading; its members are skipped")


def _sync(
    reader: Reader,
    group: Group,
    parent_id: str,
    members: Members,
    by_count: bool,
    now: datetime,
) -> Iterator[List[TDataItem]]:
    """One group's run: the joins since the last run, then, where members could have left, the
    check by count (`by_count`) or by ids, and the ids compared where the count disagrees."""
    could_lose = not members.new and bool(members.joined)
    yield from _joins(reader, group, parent_id, members, now)
    if members.gone or not could_lose:
        return
    if by_count:
        count = _profile_count(reader, group, parent_id)
        if count is None:
            members.gone = True
            return
        if count != len(members.joined):  # joins may have come since they were read: read them again
            yield from _joins(reader, group, parent_id, members, now)
        if count == len(members.joined) or members.gone:
            return
    yield from _reconcile(reader, group, parent_id, members, now)


def _joins(
    reader: Reader, group: Group, parent_id: str, members: Members, now: datetime
) -> Iterator[List[TDataItem]]:
    """Members who joined since the last run (all of a group new to the state), not loaded before."""
    since = _parse(members.since) if members.since else None
    try:
        for rows in reader.read_split(group.members(parent_id, start=since)):
            # the last run's latest second is read again; a member who left and came back has a new time
            fresh = [row for row in rows if members.joined.get(row["id"]) != _micros(row["joined_group_at"])]
            members.changed |= bool(fresh)
            for row in fresh:
                members.joined[row["id"]] = _micros(row["joined_group_at"])
                members.left.pop(row["id"], None)
                row["removed_at"] = None
            latest = max((row["joined_group_at"] for row in rows), default=None)
            if latest is not None:
                since = min(latest, now)  # a join dated in the future must not hide the joins until then
                if members.since is None or since > _parse(members.since):
                    members.since = since.isoformat()
            if fresh:
                yield fresh
    except KlaviyoNotFound:  # deleted since the groups were listed: its members left
        logger.warning(
            f"{group.table}: {group.parent_type} {parent_id} was deleted while loading; its members left"
        )
        members.gone = True


def _checks(group: Group, candidates: Mapping[str, Members]) -> Tuple[List[str], List[str]]:
    """Which groups are checked by `profile_count`, and which by reading their ids at once.

    A count is one request, but Klaviyo allows 1 a second and 15 a minute; ids come 100 a request
    at 750 a minute. The two are separate budgets, used side by side: groups are taken largest
    first, each into the queue that would finish it sooner. So a few large lists are counted in
    seconds, and an account with hundreds of lists reads the smaller ones' ids meanwhile instead
    of waiting minutes for their counts (see the README for the figures).
    """
    counts, ids = ENDPOINTS[group.count_endpoint], ENDPOINTS[group.ids_endpoint]
    to_count: List[str] = []
    to_read: List[str] = []
    ids_queued = 0  # requests
    for parent_id, members in sorted(candidates.items(), key=lambda item: -len(item[1].joined)):
        turn = len(to_count) + 1
        if turn <= counts.steady_per_minute:  # the first minute's worth go at the burst rate
            count_done = turn / counts.burst_per_second
        else:
            count_done = 60.0 * turn / counts.steady_per_minute
        pages = math.ceil(len(members.joined) / (ids.page_size or 100))
        ids_done = (ids_queued + pages) / (ids.steady_per_minute / 60.0)
        if count_done < ids_done:
            to_count.append(parent_id)
        else:
            to_read.append(parent_id)
            ids_queued += pages
    return to_count, to_read


def _profile_count(reader: Reader, group: Group, parent_id: str) -> Optional[int]:
    """The group's member count as Klaviyo has it now; None when the group is gone."""
    params = {
        f"additional-fields[{group.parent_type}]": "profile_count",
        f"fields[{group.parent_type}]": "profile_count",
    }
    try:
        for page in reader.bounded(reader.client.paginate(group.count_endpoint, params, parent_id)):
            for item in page.data:
                return int((item.get("attributes") or {})["profile_count"])
    except KlaviyoNotFound:
        pass
    return None


def _reconcile(
    reader: Reader,
    group: Group,
    parent_id: str,
    members: Members,
    now: datetime,
) -> Iterator[List[TDataItem]]:
    """Compares the group's current member ids with those loaded: who left, and any join missed.

    Only members who joined up to the latest join loaded are compared (a filter on
    `joined_group_at`), so people joining during the run are not taken for missed joins.
    """
    since = _parse(members.since) if members.since else now
    upper: Optional[datetime] = since.replace(microsecond=0) + timedelta(seconds=1)
    if upper and upper > now:
        upper = None  # Klaviyo refuses filter dates in the future
    params = {"filter": f"less-than(joined_group_at,{filter_time(upper)})"} if upper else {}
    current: Set[str] = set()
    try:
        for page in reader.bounded(reader.client.paginate(group.ids_endpoint, params, parent_id)):
            current.update(item["id"] for item in page.data)
    except KlaviyoNotFound:
        members.gone = True
        return
    for member in [m for m in members.joined if m not in current]:
        members.left[member] = members.joined.pop(member)
    missed = current - set(members.joined)
    members.changed |= bool(members.left or missed)
    if not missed:
        return
    # joins Klaviyo stamped before the latest one loaded but showed only later: read them in full
    logger.info(
        f"{group.table}: {len(missed)} members of {group.parent_type} {parent_id} joined unseen; reading them"
    )
    try:
        for rows in reader.read_split(group.members(parent_id, end=upper)):
            found = [row for row in rows if row["id"] in missed]
            for row in found:
                members.joined[row["id"]] = _micros(row["joined_group_at"])
                row["removed_at"] = None
            if found:
                yield found
    except KlaviyoNotFound:
        members.gone = True


def _leaver_rows(
    reader: Reader, group: Group, left: List[Tuple[str, str, int]], removed: str, now: datetime
) -> Iterator[List[TDataItem]]:
    """Rows for the members who left: keys that delete the rows ("drop"), or the whole row with
    `removed_at` ("mark": the profile as Klaviyo has it now, `deleted_at` if it was deleted)."""
    for start in range(0, len(left), PROFILES_PER_LOOKUP):
        chunk = left[start : start + PROFILES_PER_LOOKUP]
        rows: List[Dict[str, Any]] = [
            {group.key: parent_id, "id": member, "joined_group_at": _from_micros(joined), "removed_at": now}
            for parent_id, member, joined in chunk
        ]
        if removed == "mark":
            profiles = _profiles(reader, group.table, sorted({member for _, member, _ in chunk}))
            for row in rows:
                profile = profiles.get(row["id"])
                if profile is None:
                    row["deleted_at"] = now  # the person is no longer in Klaviyo
                else:
                    row.update({k: v for k, v in profile.items() if k != "id"})
        yield rows


def _profiles(reader: Reader, table: str, ids: List[str]) -> Dict[str, Dict[str, Any]]:
    """The profiles of these ids that still exist, cut to the member table's columns."""
    top = {name.split("__")[0] for name in COLUMN_TYPES[table]}
    condition = "any(id,[" + ",".join(f'"{member}"' for member in ids) + "])"
    found: Dict[str, Dict[str, Any]] = {}
    for rows in reader.pages(Query(STREAMS["profiles"], filters=(condition,))):
        for row in rows:
            found[row["id"]] = {k: v for k, v in row.items() if k in top}
    return found


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(value: Any) -> int:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)
