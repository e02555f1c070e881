"""A faithful local emulator of Klaviyo's JSON:API (revisions 2026-07-15 and 2026-10-15), for tests and benchmarks.

Validation (allowed query parameters, ``page[size]`` bounds, sort/fields/include/additional-fields
enums, filter fields and operators, rate limits, scopes) is driven from Klaviyo's official OpenAPI
spec of each revision, shipped next to this file: ``openapi-2026-07-15-subset.json`` — a trimmed
copy of ``openapi/stable.json`` from github.com/klaviyo/openapi at commit
f0a30ba41254904dc410d84ca497df68f8872276 (info.version 2026-07-15) — and
``openapi-2026-10-15-subset.json``, derived from it and that commit's ``openapi/beta.json``
(see ``openapi-2026-10-15-subset.SOURCE.txt``).

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
