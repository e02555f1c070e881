"""What serves one GET operation: the resource it returns, where its records come from, how its
filter/sort fields are read. Each domain module declares its :class:`Handler` rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jsonapi import NotFound, Record
from .store import Store

Getter = Callable[[Record, str], Any]
Source = Callable[[Store, str | None], list[Record]]


def get_plain(rec: Record, fieldname: str) -> Any:
    """A filter/sort field read straight from the record (dotted names walk nested objects)."""
    cur: Any = rec
    for part in fieldname.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def sort_value(v: Any) -> tuple[int, Any]:
    """Normalise a sort value into a JSON-friendly comparable tuple (None sorts first)."""
    if isinstance(v, list):
        v = min(v) if v else None
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, datetime):
        return (1, int(v.timestamp() * 1_000_000))
    if isinstance(v, (int, float)):
        return (1, v)
    return (1, str(v))


@dataclass
class Handler:
    """One GET operation: ``resource`` is the type of its data (serialised from the spec's shape)."""

    resource: str
    source: Source
    getter: Getter = get_plain
    single: bool = False
    default_sort: str | None = None
    required_filters: tuple[str, ...] = ()
    # at least one of these fields must be filtered on (any operator), e.g. coupon-codes
    required_filter_one_of: tuple[str, ...] = ()


@dataclass
class Live:
    """Random access to the current records of a (possibly large) collection, for indexed paging."""

    key: tuple[Any, ...]  # names the collection in the account's index cache
    stamp: tuple[int, ...]  # changes whenever the collection may have changed
    size: int
    get: Callable[[str], Record | None]  # id -> record as the source would return it, None if gone


class IndexableSource:
    """A data source whose records can also be fetched one by one by id (see ``server.page_generic``)."""

    def __call__(self, acc: Store, pid: str | None) -> list[Record]:  # pragma: no cover
        raise NotImplementedError

    def live(self, acc: Store, pid: str | None) -> Live:  # pragma: no cover
        raise NotImplementedError


class All(IndexableSource):
    """Every record of an ``acc.<mapping>`` table."""

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping

    def __call__(self, acc: Store, pid: str | None) -> list[Record]:
        return list(getattr(acc, self.mapping).values())

    def live(self, acc: Store, pid: str | None) -> Live:
        table: dict[str, Record] = getattr(acc, self.mapping)
        return Live(("all", self.mapping), (acc.version, len(table)), len(table), table.get)


class Members(IndexableSource):
    """The member profiles of a list/segment, each a copy with its ``joined_group_at``."""

    def __init__(self, mapping: str) -> None:
        self.mapping = mapping

    def _group(self, acc: Store, pid: str | None) -> dict[str, Any]:
        group: dict[str, Any] | None = getattr(acc, self.mapping).get(pid or "")
        if group is None:
            raise NotFound(pid)
        return group

    def __call__(self, acc: Store, pid: str | None) -> list[Record]:
        group = self._group(acc, pid)
        return [
            dict(acc.profiles_by_id[p], joined_group_at=j)
            for p, j in group["members"].items()
            if p in acc.profiles_by_id
        ]

    def live(self, acc: Store, pid: str | None) -> Live:
        members: dict[str, Any] = self._group(acc, pid)["members"]
        profiles = acc.profiles_by_id

        def get(rid: str) -> Record | None:
            if rid not in members or rid not in profiles:
                return None
            return dict(profiles[rid], joined_group_at=members[rid])

        stamp = (acc.version, len(members), len(profiles))
        return Live(("members", self.mapping, pid), stamp, len(members), get)


def one(mapping: str) -> Source:
    """The record of the path's id in ``acc.<mapping>``."""

    def src(acc: Store, pid: str | None) -> list[Record]:
        rec = getattr(acc, mapping).get(pid or "")
        if rec is None:
            raise NotFound(pid)
        return [rec]

    return src


def children(parents: str, key: str, table: str) -> Source:
    """The records of ``acc.<table>`` whose ids the path's parent in ``acc.<parents>`` lists in ``key``."""

    def src(acc: Store, pid: str | None) -> list[Record]:
        parent = getattr(acc, parents).get(pid or "")
        if parent is None:
            raise NotFound(pid)
        records = getattr(acc, table)
        return [records[i] for i in parent[key]]

    return src
