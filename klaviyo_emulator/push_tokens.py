"""Push tokens (`GET /api/push-tokens`): the account's mobile devices, seeded and served.

Attributes as the 2026-07-15 spec's `PushTokenResponseObjectResource`; the operation filters on
`id`, `profile.id`, `enablement_status` and `platform` (equals), has no sort, and pages 1..100.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from .handlers import All, Handler
from .jsonapi import Record, Resource
from .store import Store

STATUSES = ("AUTHORIZED", "UNAUTHORIZED", "DENIED", "PROVISIONAL", "NOT_DETERMINED")


def seed(acc: Store) -> None:
    """About one profile in four gets a device token, from its own RNG (other entities unchanged)."""
    rng = random.Random(f"push-tokens-{acc.spec.seed}")
    for number, profile in enumerate(acc.profiles_by_id.values()):
        if rng.random() >= 0.25:
            continue
        ios = rng.random() < 0.5
        created = profile["created"] + timedelta(minutes=rng.randrange(1, 60 * 24 * 30))
        token_id = f"PT{number:06d}"
        acc.push_tokens_by_id[token_id] = {
            "id": token_id,
            "created": created,
            "token": "".join(rng.choice("0123456789abcdef") for _ in range(64 if ios else 40)),
            "enablement_status": rng.choice(STATUSES),
            "platform": "ios" if ios else "android",
            "vendor": "APNs" if ios else "FCM",
            "background": rng.choice(("AVAILABLE", "DENIED", "RESTRICTED")),
            "recorded_date": created,
            # the spec marks it nullable beside a $ref, which OpenAPI 3.0 ignores: always an object here
            "metadata": {
                "device_id": f"device-{number}",
                "klaviyo_sdk": "swift" if ios else "android",
                "sdk_version": "4.2.0",
                "device_model": "iPhone15,2" if ios else "Pixel 8",
                "os_name": "ios" if ios else "android",
                "os_version": "18.1" if ios else "15",
                "manufacturer": "Apple" if ios else "Google",
                "app_name": "Shop",
                "app_version": "3.1.0",
                "app_build": "310",
                "app_id": "com.example.shop",
                "environment": rng.choice(("debug", "release")),
            },
            "profile_id": profile["id"],
        }


def get_push_token_field(token: Record, name: str) -> Any:
    return token["profile_id"] if name == "profile.id" else token.get(name)


RESOURCES = [Resource("push-token", "push_tokens_by_id")]

HANDLERS = {"get_push_tokens": Handler("push-token", All("push_tokens_by_id"), get_push_token_field)}
