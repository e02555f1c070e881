"""The emulator's table of domains: which resources it serialises, which GET operations it serves,
and how a new account is seeded.

A domain is a module with ``RESOURCES`` (:class:`~klaviyo_emulator.jsonapi.Resource` rows),
``HANDLERS`` (operationId -> :class:`~klaviyo_emulator.handlers.Handler`), optionally
``REVISION_RESOURCES``/``REVISION_HANDLERS`` (revision -> rows that differ there) and
``seed(acc: Store) -> None``. A new domain plugs in with one line in :data:`DOMAINS`; its ``seed``
runs after the built-in seeding and should draw from its own ``random.Random`` (as
``catalog.seed_catalog_coupons_forms_images`` does), so every existing record stays the same.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from . import (
    catalog,
    custom_objects,
    events,
    messaging,
    profiles,
    push_tokens,
    recipient_estimations,
    reviews,
)
from .handlers import Handler
from .jsonapi import Resource
from .spec import REVISIONS
from .store import Store

DOMAINS: tuple[ModuleType, ...] = (
    events,
    profiles,
    messaging,
    catalog,
    push_tokens,
    reviews,
    custom_objects,
    recipient_estimations,
)

# The built-in domains seed in this order: it fixes the draws of the account's RNG, hence every id and
# value of an account of a given seed.
_BUILTIN_SEEDING: tuple[Callable[[Store], None], ...] = (
    events.seed_account_and_metrics,
    messaging.seed_tags,
    messaging.seed_templates,
    profiles.seed_profiles,
    profiles.seed_lists,
    profiles.seed_segments,
    messaging.seed_campaigns,
    messaging.seed_flows,
    events.seed_events,
    catalog.seed_catalog_coupons_forms_images,
    events.compute_attributions,
)


def seed(acc: Store) -> None:
    for step in _BUILTIN_SEEDING:
        step(acc)
    for domain in DOMAINS:
        if hasattr(domain, "seed"):
            domain.seed(acc)


HANDLERS: dict[str, Handler] = {oid: h for d in DOMAINS for oid, h in d.HANDLERS.items()}


def _handlers(revision: str) -> dict[str, Handler]:
    """Every served operation of ``revision``, its own rows over the common ones."""
    own = {
        oid: h for d in DOMAINS for oid, h in getattr(d, "REVISION_HANDLERS", {}).get(revision, {}).items()
    }
    return {**HANDLERS, **own}


def _resources(revision: str) -> dict[str, Resource]:
    """Every resource type of ``revision``, its own rows over the common ones."""
    rows = [r for d in DOMAINS for r in d.RESOURCES]
    rows += [r for d in DOMAINS for r in getattr(d, "REVISION_RESOURCES", {}).get(revision, [])]
    return {r.rtype: r for r in rows}


HANDLERS_BY_REVISION: dict[str, dict[str, Handler]] = {rev: _handlers(rev) for rev in REVISIONS}
RESOURCES: dict[str, dict[str, Resource]] = {rev: _resources(rev) for rev in REVISIONS}
