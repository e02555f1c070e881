"""Fixtures for the emulator's own tests: one shared emulator and the spec validator (built once)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from klaviyo_emulator import AccountSpec, Emulator, EmulatorConfig, run_emulator
from klaviyo_emulator.spec import SPEC_PATH, SPEC_PATHS

EMU_SPEC = AccountSpec(seed=5, profiles=150, events=2500, large_list_members=120)


def _spec_with_errata(path: Any = SPEC_PATH) -> dict[str, Any]:
    """The shipped spec with two documented errata so that real-shaped responses can validate.

    1. ``CollectionLinks.prev/next`` are not marked nullable, but Klaviyo returns ``null`` for them
       (e.g. ``next`` on the last page).
    2. Klaviyo's ``oneOf`` unions are not discriminated and overlap (EmailSendOptions/SMSSendOptions/
       PushSendOptions are identical), so a strict ``oneOf`` can never match a real response; they
       are validated as ``anyOf``.
    """
    with path.open(encoding="utf-8") as fh:
        spec = json.load(fh)
    spec["servers"] = [{"url": "http://{hostport}", "variables": {"hostport": {"default": "127.0.0.1"}}}]
    links = spec["components"]["schemas"]["CollectionLinks"]["properties"]
    for key in ("prev", "next"):
        links[key] = dict(links[key], nullable=True)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "oneOf" in node:
                node["anyOf"] = node.pop("oneOf")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        return node

    return walk(copy.deepcopy(spec))


@pytest.fixture(scope="session")
def openapi() -> Any:
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(_spec_with_errata())


@pytest.fixture(scope="session")
def validate_response(openapi: Any) -> Any:
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    def check(resp: requests.Response) -> None:
        openapi.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))

    return check


@pytest.fixture(scope="session")
def validate_response_at() -> Any:
    """``validate_response_at(revision)(resp)``: check a response against that revision's spec file."""
    from openapi_core import OpenAPI
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    specs: dict[str, Any] = {}

    def at(revision: str) -> Any:
        if revision not in specs:
            specs[revision] = OpenAPI.from_dict(_spec_with_errata(SPEC_PATHS[revision]))

        def check(resp: requests.Response) -> None:
            specs[revision].validate_response(
                RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp)
            )

        return check

    return at


@pytest.fixture(scope="session")
def shared_emu() -> Iterator[Emulator]:
    """Read-only emulator shared by tests that do not mutate the account or config."""
    with run_emulator(EmulatorConfig(account=EMU_SPEC, rate_limit_scale=0)) as emu:
        yield emu


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A fresh emulator per test (safe to mutate)."""
    with run_emulator(
        EmulatorConfig(account=AccountSpec(seed=7, profiles=60, events=600), rate_limit_scale=0)
    ) as e:
        yield e


def session_for(e: Emulator) -> requests.Session:
    s = requests.Session()
    s.headers.update(e.headers())
    return s


@pytest.fixture
def http(shared_emu: Emulator) -> requests.Session:
    return session_for(shared_emu)


def get_all(
    s: requests.Session, url: str, params: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Follow links.next; return all data items and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    first = True
    while next_url:
        r = s.get(next_url, params=params if first else None)
        first = False
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["data"])
        pages += 1
        next_url = body["links"]["next"]
    return items, pages
