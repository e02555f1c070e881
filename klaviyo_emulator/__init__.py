"""A faithful local emulator of Klaviyo's JSON:API (revisions 2026-07-15 and 2026-10-15), for tests and benchmarks.

Validation (allowed query parameters, ``page[size]`` bounds, sort/fields/include/additional-fields
enums, filter fields and operators, rate limits with the lower tiers an operation's description gives
some parameter values, e.g. ``additional-fields[list]=profile_count``, scopes) is driven from Klaviyo's official OpenAPI
spec of each revision, shipped next to this file: ``openapi-2026-07-15-subset.json`` — a trimmed
copy of ``openapi/stable.json`` from github.com/klaviyo/openapi at commit
f0a30ba41254904dc410d84ca497df68f8872276 (info.version 2026-07-15) — and
``openapi-2026-10-15-subset.json``, derived from it and that commit's ``openapi/beta.json``
(see ``openapi-2026-10-15-subset.SOURCE.txt``).

Responses are serialised by one function (:func:`jsonapi.serializer`) from the response schema of the
operation at the requested revision: attributes, relationships and links are what that schema
declares; sparse fieldsets, additional fields and ``include`` are handled the same way for every
resource. Only what Klaviyo computes (subscriptions, definitions, counts...) is written by hand.

Layout: ``store`` (the account's tables, clock, RNG, ids), one module per domain (``events``:
account record, metrics, events, attributions; ``profiles``: profiles, lists, segments;
``messaging``: tags, templates, campaigns, flows; ``catalog``: catalog, coupons, forms, images;
``push_tokens``, ``reviews``, ``custom_objects``, ``recipient_estimations``),
each with its seeding, its :class:`jsonapi.Resource` rows (where records live, what is computed)
and its :class:`handlers.Handler` rows (operationId -> resource type, record source, filter/sort
getter); ``registry`` lists the domains and the seeding order; ``account`` is the public account
(mutations and ground truth for tests); ``server`` validates requests, pages and serves them.

A new endpoint is a new domain module with ``RESOURCES``, ``HANDLERS`` (optionally
``REVISION_RESOURCES``/``REVISION_HANDLERS`` and ``seed(acc)``, drawing from its own
``random.Random`` so every existing record stays the same), plugged in with one line in
``registry.DOMAINS``; a spec operation with no handler is not served.

Stdlib only. Usage::

    from klaviyo_emulator import EmulatorConfig, AccountSpec, run_emulator

    with run_emulator(EmulatorConfig(account=AccountSpec(seed=3), rate_limit_scale=0)) as emu:
        emu.base_url  # "http://127.0.0.1:<port>/api"
"""

from .account import Account, AccountSpec
from .server import (
    DEFAULT_API_KEY,
    Emulator,
    EmulatorConfig,
    Fault,
    RequestInfo,
    RequestLogEntry,
    run_emulator,
)
from .spec import REVISIONS, SPEC_REVISION

__all__ = [
    "DEFAULT_API_KEY",
    "REVISIONS",
    "SPEC_REVISION",
    "Account",
    "AccountSpec",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "RequestInfo",
    "RequestLogEntry",
    "run_emulator",
]
