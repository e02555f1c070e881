"""Membership and deletions in the emulator: `GET /api/segments/{id}` (with `profile_count`), the
own rate tier of `profile_count`, deleting a profile between runs, and seeding large lists.

Klaviyo's spec: `additional-fields[list]=profile_count` (and `[segment]`) on the single-group GET
"will be rate limited at 1/s burst and 15/m steady", whatever the operation's own limits say.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from . import resources as R
from .account import Account
from .spec import RateLimit

PROFILE_COUNT_LIMITS = (RateLimit(1, 1), RateLimit(15, 60))
_COUNTED = {"get_list": "list", "get_segment": "segment"}


def rate_limits(
    operation_id: str, params: dict[str, str], limits: tuple[RateLimit, ...]
) -> tuple[str, tuple[RateLimit, ...]]:
    """The limiter key and limits of a request: `profile_count` requests have their own tier."""
    rtype = _COUNTED.get(operation_id)
    if rtype and "profile_count" in params.get(f"additional-fields[{rtype}]", "").split(","):
        return f"{operation_id}:profile_count", PROFILE_COUNT_LIMITS
    return operation_id, limits


def ser_segment(acc: Account, seg: R.Record, ctx: R.Ctx) -> R.Record:
    """A segment, with `profile_count` when it is asked for (as `ser_list` does for lists)."""
    res = R.ser_segment(acc, seg, ctx)
    if "profile_count" in ctx.additional.get("segment", set()):
        res["attributes"]["profile_count"] = len(seg["members"])
    return res


def delete_profile(account: Account, profile_id: str) -> None:
    """Deletes a profile as Klaviyo's deletion request does: it leaves every list and segment and
    is no longer listed. (Its events stay in the emulator; the source never reads them again.)"""
    with account.lock:
        del account.profiles_by_id[profile_id]
        for group in (*account.lists_by_id.values(), *account.segments_by_id.values()):
            if group["members"].pop(profile_id, None) is not None:
                group["updated"] = account.now
        account.bump()


def add_lists(account: Account, count: int, members_each: int) -> list[str]:
    """Adds `count` lists of `members_each` members (the account's profiles in turn), for benchmarks."""
    with account.lock:
        profiles = sorted(account.profiles_by_id)
        ids = []
        for n in range(count):
            list_id = f"Bench{n:02d}"
            chosen = [profiles[(n * members_each + i) % len(profiles)] for i in range(members_each)]
            start = account.now - timedelta(days=365)
            account.lists_by_id[list_id] = {
                "id": list_id,
                "name": f"Benchmark list {n + 1}",
                "created": start,
                "updated": account.now,
                "opt_in_process": "single_opt_in",
                "members": {pid: start + timedelta(seconds=i * 60) for i, pid in enumerate(chosen)},
                "tag_ids": [],
            }
            ids.append(list_id)
        account.bump()
        return ids


def handlers() -> dict[str, Any]:
    """The operations this module serves, for server.HANDLERS."""
    from .server import _TAG_INC, Handler, _none, _one

    return {
        "get_segment": Handler(
            ser_segment,
            R.get_plain,
            _one("segments_by_id"),
            single=True,
            includes={"tags": _TAG_INC, "flow-triggers": _none},
        )
    }
