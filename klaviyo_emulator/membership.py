"""Membership changes between runs, as functions of an account (the same as :class:`Account`'s
``delete_profile`` and ``add_lists``; tests and benchmarks import them from here)."""

from __future__ import annotations

from .account import Account


def delete_profile(account: Account, profile_id: str) -> None:
    """See :meth:`Account.delete_profile`."""
    account.delete_profile(profile_id)


def add_lists(account: Account, count: int, members_each: int) -> list[str]:
    """See :meth:`Account.add_lists`."""
    return account.add_lists(count, members_each)
