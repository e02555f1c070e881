"""Tags, templates, campaigns (2026-07-15 and 2026-10-15 shapes) and flows: seeding, mutations,
resources and GET operations."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .handlers import All, Handler, children
from .jsonapi import Record, Resource
from .store import Store, fmt_dt

CHANNELS = ("email", "sms", "mobile_push")
_TAG_NAMES = ["Promo", "Newsletter", "Winter", "VIP", "Onboarding", "Summer"]
_FLOW_NAMES = ["Welcome Series", "Post-Purchase", "Birthday", "Winback"]


# --------------------------------------------------------------------------- seeding and mutations
def seed_tags(acc: Store) -> None:
    """A default and an exclusive tag group, ``spec.tags`` tags alternating between them."""
    groups = []
    for i, (gname, excl, default) in enumerate([("Default", False, True), ("Season", True, False)]):
        gid = acc.short_id() if i else "default"
        groups.append(gid)
        acc.tag_groups_by_id[gid] = {"id": gid, "name": gname, "exclusive": excl, "default": default}
    for i in range(acc.spec.tags):
        tid = acc.uuid4()
        acc.tags_by_id[tid] = {
            "id": tid,
            "name": _TAG_NAMES[i % 6] + ("" if i < 6 else f" {i}"),
            "tag_group_id": groups[i % len(groups)],
        }


def seed_templates(acc: Store) -> None:
    for i in range(acc.spec.templates):
        tid = acc.short_id()
        c = acc.rand_dt(acc.start, acc.spec.end)
        acc.templates_by_id[tid] = {
            "id": tid,
            "name": f"Template {i + 1}",
            "editor_type": "SYSTEM_DRAGGABLE" if i % 2 == 0 else "CODE",
            "html": f"<html><body><h1>Template {i + 1}</h1></body></html>",
            "text": f"Template {i + 1}",
            "amp": None,
            "created": c,
            "updated": acc.rand_dt(c, acc.spec.end),
        }


def add_campaign(acc: Store, channel: str, at: datetime) -> str:
    """A campaign with one message on ``channel``; created_at = updated_at = ``at``."""
    rng = acc.rng
    cid = acc.ulid(at)
    status = rng.choice(["Sent", "Sent", "Draft", "Scheduled", "Cancelled"])
    send_time = at + timedelta(hours=rng.randint(1, 48)) if status in ("Sent", "Scheduled") else None
    list_ids = sorted(acc.lists_by_id)
    n = sum(1 for c in acc.campaigns_by_id.values() if c["channel"] == channel) + 1
    camp: dict[str, Any] = {
        "id": cid,
        "channel": channel,
        "name": f"{channel.replace('_', ' ').title()} Campaign {n}",
        "status": status,
        "archived": status == "Cancelled" and n % 2 == 0,
        "included": list_ids[1:2],
        "excluded": [],
        "created_at": at,
        "updated_at": at,
        "scheduled_at": send_time - timedelta(hours=1) if send_time else None,
        "send_time": send_time,
        "message_ids": [],
        "tag_ids": [sorted(acc.tags_by_id)[n % len(acc.tags_by_id)]] if acc.tags_by_id else [],
    }
    acc.campaigns_by_id[cid] = camp
    mid = acc.ulid(at)
    templates = sorted(acc.templates_by_id)
    acc.campaign_messages_by_id[mid] = {
        "id": mid,
        "campaign_id": cid,
        "channel": channel,
        "label": f"{camp['name']} message",
        "template_id": templates[n % len(templates)] if templates and channel == "email" else None,
        "send_time": send_time,
        "created_at": at,
        "updated_at": at,
    }
    camp["message_ids"].append(mid)
    return cid


def seed_campaigns(acc: Store) -> None:
    for channel in CHANNELS:
        for _ in range(acc.spec.campaigns_per_channel):
            add_campaign(acc, channel, acc.rand_dt(acc.start, acc.spec.end - timedelta(days=1)))


def _add_flow_action(acc: Store, flow: dict[str, Any], kind: str) -> None:
    acc.flow_action_seq += acc.rng.randint(1, 500)
    aid = str(acc.flow_action_seq)
    c = flow["created"]
    action = {
        "id": aid,
        "flow_id": flow["id"],
        "action_type": kind,
        "status": "live" if flow["status"] == "live" else "draft",
        "created": c,
        "updated": acc.rand_dt(c, flow["updated"] + timedelta(seconds=1)),
        "message_ids": [],
    }
    acc.flow_actions_by_id[aid] = action
    flow["action_ids"].append(aid)
    if kind not in ("send-email", "send-sms"):
        return
    mid = acc.short_id()
    channel = "email" if kind == "send-email" else "sms"
    templates = sorted(acc.templates_by_id)
    acc.flow_messages_by_id[mid] = {
        "id": mid,
        "action_id": aid,
        "flow_id": flow["id"],
        "name": f"{flow['name']} {channel} #{len(action['message_ids']) + 1}",
        "channel": channel,
        "created": c,
        "updated": action["updated"],
        "template_id": acc.rng.choice(templates) if templates and channel == "email" else None,
    }
    action["message_ids"].append(mid)


def seed_flows(acc: Store) -> None:
    """Flows triggered by a metric, a list and a date in turn, each with three actions."""
    end = acc.spec.end
    metric_trigger = acc.metric_id("Placed Order", "shopify")
    tag_ids = list(acc.tags_by_id)
    lists = list(acc.lists_by_id)
    for i in range(acc.spec.flows):
        fid = acc.short_id()
        c = acc.rand_dt(acc.start, end - timedelta(days=5))
        trig = ["Metric", "Added to List", "Date Based"][i % 3]
        flow = {
            "id": fid,
            "name": _FLOW_NAMES[i % 4] + ("" if i < 4 else f" {i}"),
            "status": ["live", "draft", "manual"][i % 3],
            "archived": i == 2,
            "created": c,
            "updated": acc.rand_dt(c, end),
            "trigger_type": trig,
            "trigger_metric_id": metric_trigger if trig == "Metric" else None,
            "trigger_list_id": lists[1] if trig == "Added to List" and len(lists) > 1 else None,
            "action_ids": [],
            "tag_ids": [tag_ids[(i + 1) % len(tag_ids)]] if tag_ids else [],
        }
        acc.flows_by_id[fid] = flow
        kinds = (
            ["time-delay", "send-email", "send-sms"]
            if i % 2 == 0
            else ["send-email", "time-delay", "send-email"]
        )
        for kind in kinds:
            _add_flow_action(acc, flow, kind)


# --------------------------------------------------------------------------- what Klaviyo computes
def _tracking_options(acc: Store, c: Record) -> dict[str, Any] | None:
    if c["channel"] == "email":
        return {
            "add_tracking_params": False,
            "custom_tracking_params": None,
            "is_tracking_clicks": True,
            "is_tracking_opens": True,
        }
    if c["channel"] == "sms":
        return {"add_tracking_params": False, "custom_tracking_params": None}
    return None


def _send_strategy(acc: Store, c: Record) -> dict[str, Any]:
    if c["send_time"] is None:
        return {"method": "immediate"}
    return {"method": "static", "datetime": fmt_dt(c["send_time"]), "options": {"is_local": False}}


def _campaign_message_definition(acc: Store, m: Record) -> dict[str, Any]:
    if m["channel"] == "email":
        return {
            "channel": "email",
            "label": m["label"],
            "content": {
                "subject": f"{m['label']} subject",
                "preview_text": "Don't miss out",
                "from_email": "hello@example.com",
                "from_label": "Emulated Store",
                "reply_to_email": None,
                "cc_email": None,
                "bcc_email": None,
            },
        }
    if m["channel"] == "sms":
        return {
            "channel": "sms",
            "content": {"body": f"{m['label']}: reply STOP to opt out", "media_url": None},
            "render_options": {
                "shorten_links": True,
                "add_org_prefix": True,
                "add_info_link": True,
                "add_opt_out_language": False,
            },
        }
    return {
        "channel": "mobile_push",
        "notification_type": "standard",
        "content": {
            "title": m["label"],
            "body": "Tap to see what's new",
            "dynamic_image": None,
            "action_buttons": None,
        },
        "kv_pairs": None,
        "options": {"play_sound": True},
    }


def _send_times(acc: Store, m: Record) -> list[dict[str, Any]]:
    return [{"datetime": fmt_dt(m["send_time"]), "is_local": False}] if m["send_time"] else []


# ---- revision 2026-10-15: the omnichannel Campaigns API (shape from Klaviyo's beta spec, see
# openapi-2026-10-15-subset.SOURCE.txt); the same account records, told in the new shape
_OMNI_STATUS = {"Sent": "sent", "Draft": "draft", "Scheduled": "scheduled", "Cancelled": "cancelled"}


def omni_status(campaign: Record) -> str | None:
    """A 2026-10-15 message status (lower case enum) from its campaign's 2026-07-15 status."""
    return _OMNI_STATUS.get(campaign["status"])


def _omni_campaign_definition(acc: Store, c: Record) -> dict[str, Any]:
    return {
        "name": c["name"],
        "builder": "wizard",
        "archived": c["archived"],
        "color": None,
        "description": None,
        "send_settings": {
            "send_timezone": "UTC",
            "send_strategy": "static" if c["send_time"] is not None else "immediate",
            "send_passed_rltz_immediately": False,
            "exit_condition_enabled": False,
            "exit_condition_conversion_metric_id": None,
        },
    }


def _omni_message_definition(acc: Store, m: Record) -> dict[str, Any]:
    return {
        "name": m["label"],
        "status": omni_status(acc.campaigns_by_id[m["campaign_id"]]),
        "tracking_options": {
            "is_add_utm": False,
            "is_tracking_clicks": m["channel"] != "mobile_push",
            "is_tracking_opens": m["channel"] == "email",
        },
        "send_options": {
            "send_time": fmt_dt(m["send_time"]),
            "send_times": None,
            "send_strategy": "static",
            "recipient_percentage": 100,
            "throttling_type": "none",
            "throttle_unit": "hour",
            "is_ignoring_unsubscribes": False,
        },
    }


def _flow_email(msg: Record) -> dict[str, Any]:
    return {
        "from_email": "hello@example.com",
        "from_label": "Emulated Store",
        "reply_to_email": None,
        "cc_email": None,
        "bcc_email": None,
        "subject_line": f"{msg['name']}",
        "preview_text": None,
        "template_id": msg["template_id"],
        "smart_sending_enabled": True,
        "transactional": False,
        "add_tracking_params": False,
        "custom_tracking_params": None,
        "additional_filters": None,
        "name": msg["name"],
        "id": msg["id"],
    }


def _flow_sms(msg: Record) -> dict[str, Any]:
    return {
        "body": f"{msg['name']}: reply STOP to opt out",
        "image_id": None,
        "dynamic_image": None,
        "message_hierarchy": None,
        "shorten_links": True,
        "include_contact_card": False,
        "add_org_prefix": True,
        "add_info_link": True,
        "add_opt_out_language": False,
        "smart_sending_enabled": True,
        "sms_quiet_hours_enabled": True,
        "transactional": False,
        "add_tracking_params": False,
        "custom_tracking_params": None,
        "template_id": None,
        "additional_filters": None,
        "name": msg["name"],
        "id": msg["id"],
    }


def _flow_message_definition(acc: Store, m: Record) -> dict[str, Any]:
    return _flow_email(m) if m["channel"] == "email" else _flow_sms(m)


def _flow_action_definition(acc: Store, a: Record) -> dict[str, Any]:
    flow = acc.flows_by_id.get(a["flow_id"])
    ids = flow["action_ids"] if flow else [a["id"]]
    pos = ids.index(a["id"]) if a["id"] in ids else len(ids) - 1
    nxt = ids[pos + 1] if pos + 1 < len(ids) else None
    base: dict[str, Any] = {"id": a["id"], "type": a["action_type"], "links": {"next": nxt}}
    if a["action_type"] == "time-delay":
        base["data"] = {
            "unit": "days",
            "value": 1 + int(a["id"]) % 3,
            "secondary_value": None,
            "timezone": "profile",
        }
        return base
    msgs = [acc.flow_messages_by_id[m] for m in a["message_ids"] if m in acc.flow_messages_by_id]
    base["data"] = {
        "message": _flow_message_definition(acc, msgs[0]) if msgs else None,
        "status": a["status"],
    }
    return base


def _template_definition(acc: Store, t: Record) -> dict[str, Any]:
    return {
        "id": None,
        "template_id": t["id"],
        "body": {
            "id": None,
            "properties": {"id": None, "css_class": None},
            "styles": {"background_color": "#ffffff", "width": 600},
            "sections": [],
        },
        "styles": [],
    }


def _campaign_audiences(acc: Store, c: Record) -> dict[str, Any]:
    return {"included": list(c["included"]), "excluded": list(c["excluded"])}


# --------------------------------------------------------------------------- resources and GETs
def get_campaign_field(c: Record, f: str) -> Any:
    if f == "messages.channel":
        return c["channel"]
    return c.get(f)


def get_omni_campaign_field(c: Record, f: str) -> Any:
    """Getter of the 2026-10-15 campaign filters and sorts (``builder``: every campaign is a wizard one)."""
    return "wizard" if f == "builder" else c.get(f)


_OMNI_MESSAGE_FIELDS = {"created": "created_at", "updated": "updated_at", "name": "label"}


def get_omni_message_field(m: Record, f: str) -> Any:
    """Getter of the 2026-10-15 campaign-message filters and sorts (``status`` from the campaign)."""
    return m.get(_OMNI_MESSAGE_FIELDS.get(f, f))


def _with_status(acc: Store, messages: list[Record]) -> list[Record]:
    """Campaign messages with the status their campaign gives them (a 2026-10-15 filter/sort field)."""
    return [dict(m, status=omni_status(acc.campaigns_by_id[m["campaign_id"]])) for m in messages]


_campaign_messages = children("campaigns_by_id", "message_ids", "campaign_messages_by_id")


def _omni_campaign_messages(acc: Store, pid: str | None) -> list[Record]:
    return _with_status(acc, _campaign_messages(acc, pid))


def _all_omni_messages(acc: Store, pid: str | None) -> list[Record]:
    return _with_status(acc, list(acc.campaign_messages_by_id.values()))


RESOURCES = [
    Resource(
        "campaign",
        "campaigns_by_id",
        computed={
            "audiences": _campaign_audiences,
            "send_options": lambda acc, c: {"use_smart_sending": True},
            "tracking_options": _tracking_options,
            "send_strategy": _send_strategy,
        },
        to_many={"campaign-messages": "message_ids", "tags": "tag_ids"},
    ),
    Resource(
        "campaign-message",
        "campaign_messages_by_id",
        computed={"definition": _campaign_message_definition, "send_times": _send_times},
    ),
    Resource("flow", "flows_by_id", to_many={"flow-actions": "action_ids", "tags": "tag_ids"}),
    Resource("flow-action", "flow_actions_by_id", computed={"definition": _flow_action_definition}),
    Resource(
        "flow-message",
        "flow_messages_by_id",
        computed={"definition": _flow_message_definition},
        to_one={"flow-action": "action_id"},
    ),
    Resource("template", "templates_by_id", computed={"definition": _template_definition}),
    Resource("tag", "tags_by_id"),
    Resource("tag-group", "tag_groups_by_id"),
]
REVISION_RESOURCES = {
    "2026-10-15": [
        Resource(
            "campaign",
            "campaigns_by_id",
            computed={"definition": _omni_campaign_definition},
            to_many={"campaign-messages": "message_ids", "tags": "tag_ids"},
        ),
        Resource(
            "campaign-message",
            "campaign_messages_by_id",
            computed={"definition": _omni_message_definition},
            renamed={"created": "created_at", "updated": "updated_at"},
        ),
    ]
}

HANDLERS = {
    "get_campaigns": Handler(
        "campaign", All("campaigns_by_id"), get_campaign_field, required_filters=("messages.channel",)
    ),
    "get_messages_for_campaign": Handler("campaign-message", _campaign_messages),
    "get_flows": Handler("flow", All("flows_by_id")),
    "get_actions_for_flow": Handler(
        "flow-action", children("flows_by_id", "action_ids", "flow_actions_by_id")
    ),
    "get_flow_action_messages": Handler(
        "flow-message", children("flow_actions_by_id", "message_ids", "flow_messages_by_id")
    ),
    "get_templates": Handler("template", All("templates_by_id")),
    "get_tags": Handler("tag", All("tags_by_id")),
    "get_tag_groups": Handler("tag-group", All("tag_groups_by_id")),
}
# Operations whose behaviour differs by revision: 2026-10-15's omnichannel Campaigns API (no channel
# filter, new shapes, a /campaign-messages collection). Everything else is served as in HANDLERS.
REVISION_HANDLERS = {
    "2026-10-15": {
        "get_campaigns": Handler("campaign", All("campaigns_by_id"), get_omni_campaign_field),
        "get_campaign_messages": Handler("campaign-message", _all_omni_messages, get_omni_message_field),
        "get_messages_for_campaign": Handler(
            "campaign-message", _omni_campaign_messages, get_omni_message_field
        ),
    }
}
