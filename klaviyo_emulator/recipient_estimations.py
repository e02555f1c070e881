"""Campaign recipient estimations (`GET /api/campaign-recipient-estimations/{campaign id}`).

Every seeded campaign has one (its id is the campaign's); campaigns added later have none (404), as
Klaviyo has none until an estimation job ran.
"""

from __future__ import annotations

import random

from .handlers import Handler, one
from .jsonapi import Resource
from .store import Store


def seed(acc: Store) -> None:
    """One estimate per campaign, from its own RNG (every other record unchanged)."""
    rng = random.Random(f"recipient-estimations-{acc.spec.seed}")
    for campaign_id in acc.campaigns_by_id:
        acc.recipient_estimations_by_id[campaign_id] = {
            "id": campaign_id,
            "estimated_recipient_count": rng.randint(0, 50_000),
        }


RESOURCES = [Resource("campaign-recipient-estimation", "recipient_estimations_by_id")]

HANDLERS = {
    "get_campaign_recipient_estimation": Handler(
        "campaign-recipient-estimation", one("recipient_estimations_by_id"), single=True
    )
}
