"""JSON:API serialisation of account records and per-operation data sources.

Links are rendered with the placeholder :data:`BASE`; the server replaces it with the absolute
``http://host:port/api`` prefix of the request (so pre-serialised fragments can be reused).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .account import Account, fmt_dt

BASE = "@@KLAVIYO_EMULATOR_BASE@@"
Record = dict[str, Any]


class NotFound(Exception):
    """Unknown parent / resource id."""


@dataclass
class Ctx:
    """Per-request serialisation options."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    include: set[str] = field(default_factory=set)
    additional: dict[str, set[str]] = field(default_factory=dict)
    operation_id: str = ""


def rel_one(path: str, name: str, rtype: str, rid: str | None) -> dict[str, Any]:
    return {
        "data": {"type": rtype, "id": rid} if rid is not None else None,
        "links": {"self": f"{BASE}/{path}/relationships/{name}/", "related": f"{BASE}/{path}/{name}/"},
    }


def rel_many(path: str, name: str, rtype: str | None = None, ids: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ids is not None and rtype is not None:
        out["data"] = [{"type": rtype, "id": i} for i in ids]
    out["links"] = {"self": f"{BASE}/{path}/relationships/{name}/", "related": f"{BASE}/{path}/{name}/"}
    return out


def project(attrs: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """Sparse fieldset projection supporting dotted paths (``location.city``)."""
    out: dict[str, Any] = {}
    for path in wanted:
        parts = path.split(".")
        if parts[0] not in attrs:
            continue
        src: Any = attrs
        dst = out
        for i, part in enumerate(parts):
            if not isinstance(src, dict) or part not in src:
                break
            if i == len(parts) - 1 or not isinstance(src[part], dict):
                dst[part] = src[part]
                break
            nxt = dst.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                dst[part] = nxt
            dst = nxt
            src = src[part]
    return out


def resource(
    rtype: str, rid: str, attrs: dict[str, Any], rels: dict[str, Any] | None, ctx: Ctx, path: str
) -> Record:
    wanted = ctx.fields.get(rtype)
    if wanted is not None:
        attrs = project(attrs, wanted)
    res: Record = {"type": rtype, "id": rid, "attributes": attrs}
    if rels:
        res["relationships"] = rels
    res["links"] = {"self": f"{BASE}/{path}/"}
    return res


# --------------------------------------------------------------------------- serializers
def ser_event(acc: Account, ev: Record, ctx: Ctx) -> Record:
    path = f"events/{ev['id']}"
    rels = {
        "profile": rel_one(path, "profile", "profile", ev["profile_id"]),
        "metric": rel_one(path, "metric", "metric", ev["metric_id"]),
        "attributions": rel_many(
            path,
            "attributions",
            "attribution",
            list(ev.get("attribution_ids", [])) if "attributions" in ctx.include else None,
        ),
    }
    attrs = {
        "timestamp": ev["timestamp"],
        "event_properties": ev["event_properties"],
        "datetime": fmt_dt(ev["datetime"]),
        "uuid": ev["uuid"],
    }
    return resource("event", ev["id"], attrs, rels, ctx, path)


def ser_metric(acc: Account, m: Record, ctx: Ctx) -> Record:
    path = f"metrics/{m['id']}"
    inc = "flow-triggers" in ctx.include
    ids = (
        [f["id"] for f in acc.flows_by_id.values() if f.get("trigger_metric_id") == m["id"]] if inc else None
    )
    attrs = {
        "name": m["name"],
        "created": fmt_dt(m["created"]),
        "updated": fmt_dt(m["updated"]),
        "integration": m["integration"],
    }
    return resource(
        "metric", m["id"], attrs, {"flow-triggers": rel_many(path, "flow-triggers", "flow", ids)}, ctx, path
    )


def _subscriptions(p: Record) -> dict[str, Any]:
    suppressed = bool(p["suppression"])
    ts = fmt_dt(p["consent_timestamp"])
    return {
        "email": {
            "marketing": {
                "can_receive_email_marketing": not suppressed and p["email"] is not None,
                "consent": p["consent"],
                "consent_timestamp": ts,
                "last_updated": ts,
                "method": "PREFERENCE_PAGE" if p["consent"] != "NEVER_SUBSCRIBED" else None,
                "method_detail": None,
                "custom_method_detail": None,
                "double_optin": None,
                "suppression": [
                    {"reason": s["reason"], "timestamp": fmt_dt(s["timestamp"])} for s in p["suppression"]
                ],
                "list_suppressions": [],
            }
        },
        "sms": {
            "marketing": {
                "can_receive_sms_marketing": p["sms_consent"] == "SUBSCRIBED"
                and p["phone_number"] is not None,
                "consent": p["sms_consent"],
                "consent_timestamp": fmt_dt(p["created"]) if p["sms_consent"] == "SUBSCRIBED" else None,
                "method": "TEXT" if p["sms_consent"] == "SUBSCRIBED" else None,
                "method_detail": "JOIN" if p["sms_consent"] == "SUBSCRIBED" else None,
                "last_updated": fmt_dt(p["created"]),
            },
            "transactional": {
                "can_receive_sms_transactional": p["phone_number"] is not None,
                "consent": "SUBSCRIBED" if p["phone_number"] is not None else "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "method": None,
                "method_detail": None,
                "last_updated": fmt_dt(p["created"]),
            },
        },
        "mobile_push": {
            "marketing": {
                "can_receive_push_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
            }
        },
    }


def _predictive(p: Record) -> dict[str, Any]:
    orders = float(p["properties"].get("lifetime_orders", 0))
    return {
        "historic_clv": round(orders * 42.5, 2),
        "predicted_clv": round(orders * 10.0, 2),
        "total_clv": round(orders * 52.5, 2),
        "historic_number_of_orders": orders,
        "predicted_number_of_orders": round(orders / 4, 2),
        "average_days_between_orders": 30.0 if orders else None,
        "average_order_value": 42.5 if orders else None,
        "churn_probability": 0.35,
        "expected_date_of_next_order": None,
        "ranked_channel_affinity": None,
    }


_PROFILE_ATTRS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
)


def ser_profile(acc: Account, p: Record, ctx: Ctx) -> Record:
    path = f"profiles/{p['id']}"
    attrs: dict[str, Any] = {}
    extra = ctx.additional.get("profile", set())
    if "subscriptions" in extra:
        attrs["subscriptions"] = _subscriptions(p)
    if "predictive_analytics" in extra:
        attrs["predictive_analytics"] = _predictive(p)
    for k in _PROFILE_ATTRS:
        attrs[k] = p[k]
    attrs["created"] = fmt_dt(p["created"])
    attrs["updated"] = fmt_dt(p["updated"])
    attrs["last_event_date"] = fmt_dt(p["last_event_date"])
    attrs["location"] = p["location"]
    attrs["properties"] = p["properties"]
    if "joined_group_at" in p:
        attrs["joined_group_at"] = fmt_dt(p["joined_group_at"])
    rels = {
        "lists": rel_many(path, "lists"),
        "segments": rel_many(path, "segments"),
        "push-tokens": rel_many(
            path, "push-tokens", "push-token", [] if "push-tokens" in ctx.include else None
        ),
    }
    if ctx.operation_id == "get_profiles":
        rels["conversations"] = rel_many(
            path, "conversations", "conversation", [] if "conversations" in ctx.include else None
        )
    res = resource("profile", p["id"], attrs, rels, ctx, path)
    if extra:
        for k in ("subscriptions", "predictive_analytics"):
            if k in extra and k in attrs:
                res["attributes"][k] = attrs[k]
    return res


def _flow_triggers(acc: Account, key: str, value: str) -> list[str]:
    return [f["id"] for f in acc.flows_by_id.values() if f.get(key) == value]


def ser_list(acc: Account, lst: Record, ctx: Ctx) -> Record:
    path = f"lists/{lst['id']}"
    attrs: dict[str, Any] = {}
    if "profile_count" in ctx.additional.get("list", set()):
        attrs["profile_count"] = len(lst["members"])
    attrs.update(
        name=lst["name"],
        created=fmt_dt(lst["created"]),
        updated=fmt_dt(lst["updated"]),
        opt_in_process=lst["opt_in_process"],
    )
    rels = {
        "profiles": rel_many(path, "profiles"),
        "tags": rel_many(path, "tags", "tag", lst["tag_ids"] if "tags" in ctx.include else None),
        "flow-triggers": rel_many(
            path,
            "flow-triggers",
            "flow",
            _flow_triggers(acc, "trigger_list_id", lst["id"]) if "flow-triggers" in ctx.include else None,
        ),
    }
    res = resource("list", lst["id"], attrs, rels, ctx, path)
    if "profile_count" in attrs:
        res["attributes"]["profile_count"] = attrs["profile_count"]
    return res


def ser_segment(acc: Account, seg: Record, ctx: Ctx) -> Record:
    path = f"segments/{seg['id']}"
    attrs = {
        "name": seg["name"],
        "definition": {"condition_groups": []},
        "created": fmt_dt(seg["created"]),
        "updated": fmt_dt(seg["updated"]),
        "is_active": seg["is_active"],
        "is_processing": seg["is_processing"],
        "is_starred": seg["is_starred"],
    }
    rels = {
        "profiles": rel_many(path, "profiles"),
        "tags": rel_many(path, "tags", "tag", seg["tag_ids"] if "tags" in ctx.include else None),
        "flow-triggers": rel_many(
            path, "flow-triggers", "flow", [] if "flow-triggers" in ctx.include else None
        ),
    }
    return resource("segment", seg["id"], attrs, rels, ctx, path)


def ser_campaign(acc: Account, c: Record, ctx: Ctx) -> Record:
    path = f"campaigns/{c['id']}"
    ch = c["channel"]
    tracking: dict[str, Any] | None
    if ch == "email":
        tracking = {
            "add_tracking_params": False,
            "custom_tracking_params": None,
            "is_tracking_clicks": True,
            "is_tracking_opens": True,
        }
    elif ch == "sms":
        tracking = {"add_tracking_params": False, "custom_tracking_params": None}
    else:
        tracking = None
    strategy: dict[str, Any]
    if c["send_time"] is not None:
        strategy = {"method": "static", "datetime": fmt_dt(c["send_time"]), "options": {"is_local": False}}
    else:
        strategy = {"method": "immediate"}
    attrs = {
        "name": c["name"],
        "status": c["status"],
        "archived": c["archived"],
        "audiences": {"included": list(c["included"]), "excluded": list(c["excluded"])},
        "send_options": {"use_smart_sending": True},
        "send_strategy": strategy,
        "created_at": fmt_dt(c["created_at"]),
        "scheduled_at": fmt_dt(c["scheduled_at"]),
        "updated_at": fmt_dt(c["updated_at"]),
        "send_time": fmt_dt(c["send_time"]),
    }
    if tracking is not None:  # the spec's nullable oneOf cannot carry null: omit instead
        attrs["tracking_options"] = tracking
    rels = {
        "campaign-messages": rel_many(
            path,
            "campaign-messages",
            "campaign-message",
            c["message_ids"] if "campaign-messages" in ctx.include else None,
        ),
        "tags": rel_many(path, "tags", "tag", c["tag_ids"] if "tags" in ctx.include else None),
    }
    return resource("campaign", c["id"], attrs, rels, ctx, path)


def _campaign_message_definition(m: Record) -> dict[str, Any]:
    ch = m["channel"]
    if ch == "email":
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
    if ch == "sms":
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


def ser_campaign_message(acc: Account, m: Record, ctx: Ctx) -> Record:
    path = f"campaign-messages/{m['id']}"
    attrs = {
        "definition": _campaign_message_definition(m),
        "send_times": [{"datetime": fmt_dt(m["send_time"]), "is_local": False}] if m["send_time"] else [],
        "created_at": fmt_dt(m["created_at"]),
        "updated_at": fmt_dt(m["updated_at"]),
    }
    rels = {
        "campaign": rel_one(path, "campaign", "campaign", m["campaign_id"]),
        "template": rel_one(path, "template", "template", m["template_id"]),
        "image": rel_one(path, "image", "image", None),
    }
    if rels["template"]["data"] is None:
        del rels["template"]["data"]
    del rels["image"]["data"]
    return resource("campaign-message", m["id"], attrs, rels, ctx, path)


# ---- revision 2026-10-15: the omnichannel Campaigns API (shape from Klaviyo's beta spec, see
# openapi-2026-10-15-subset.SOURCE.txt); the same account records, told in the new shape
_OMNI_STATUS = {"Sent": "sent", "Draft": "draft", "Scheduled": "scheduled", "Cancelled": "cancelled"}


def omni_status(campaign: Record) -> str | None:
    """A 2026-10-15 message status (lower case enum) from its campaign's 2026-07-15 status."""
    return _OMNI_STATUS.get(campaign["status"])


def ser_omni_campaign(acc: Account, c: Record, ctx: Ctx) -> Record:
    path = f"campaigns/{c['id']}"
    attrs = {
        "created_at": fmt_dt(c["created_at"]),
        "updated_at": fmt_dt(c["updated_at"]),
        "definition": {
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
        },
    }
    wanted = ctx.include
    rels = {
        "campaign-audiences": rel_many(path, "campaign-audiences"),
        "campaign-messages": rel_many(
            path,
            "campaign-messages",
            "campaign-message",
            c["message_ids"] if "campaign-messages" in wanted else None,
        ),
        "tags": rel_many(path, "tags", "tag", c["tag_ids"] if "tags" in wanted else None),
    }
    return resource("campaign", c["id"], attrs, rels, ctx, path)


def ser_omni_campaign_message(acc: Account, m: Record, ctx: Ctx) -> Record:
    path = f"campaign-messages/{m['id']}"
    camp = acc.campaigns_by_id[m["campaign_id"]]
    attrs = {
        "created": fmt_dt(m["created_at"]),
        "updated": fmt_dt(m["updated_at"]),
        "definition": {
            "name": m["label"],
            "status": omni_status(camp),
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
        },
    }
    rels = {
        "campaign": rel_one(path, "campaign", "campaign", m["campaign_id"]),
        "campaign-audience": rel_many(path, "campaign-audience"),
        "campaign-variations": rel_many(path, "campaign-variations"),
    }
    return resource("campaign-message", m["id"], attrs, rels, ctx, path)


def ser_flow(acc: Account, f: Record, ctx: Ctx) -> Record:
    path = f"flows/{f['id']}"
    attrs = {
        "name": f["name"],
        "status": f["status"],
        "archived": f["archived"],
        "created": fmt_dt(f["created"]),
        "updated": fmt_dt(f["updated"]),
        "trigger_type": f["trigger_type"],
    }
    rels = {
        "flow-actions": rel_many(
            path, "flow-actions", "flow-action", f["action_ids"] if "flow-actions" in ctx.include else None
        ),
        "tags": rel_many(path, "tags", "tag", f["tag_ids"] if "tags" in ctx.include else None),
    }
    return resource("flow", f["id"], attrs, rels, ctx, path)


def _flow_email(acc: Account, msg: Record) -> dict[str, Any]:
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


def _flow_sms(acc: Account, msg: Record) -> dict[str, Any]:
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


def _flow_action_definition(acc: Account, a: Record) -> dict[str, Any]:
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
    else:
        msgs = [acc.flow_messages_by_id[m] for m in a["message_ids"] if m in acc.flow_messages_by_id]
        message = None
        if msgs:
            message = _flow_email(acc, msgs[0]) if msgs[0]["channel"] == "email" else _flow_sms(acc, msgs[0])
        base["data"] = {"message": message, "status": a["status"]}
    return base


def ser_flow_action(acc: Account, a: Record, ctx: Ctx) -> Record:
    path = f"flow-actions/{a['id']}"
    attrs = {
        "created": fmt_dt(a["created"]),
        "updated": fmt_dt(a["updated"]),
        "definition": _flow_action_definition(acc, a),
    }
    rels = {
        "flow": rel_one(path, "flow", "flow", a["flow_id"]),
        "flow-messages": rel_many(path, "flow-messages"),
    }
    return resource("flow-action", a["id"], attrs, rels, ctx, path)


def ser_flow_message(acc: Account, m: Record, ctx: Ctx) -> Record:
    path = f"flow-messages/{m['id']}"
    attrs = {
        "channel": m["channel"],
        "created": fmt_dt(m["created"]),
        "updated": fmt_dt(m["updated"]),
        "definition": _flow_email(acc, m) if m["channel"] == "email" else _flow_sms(acc, m),
    }
    rels: dict[str, Any] = {"flow-action": rel_one(path, "flow-action", "flow-action", m["action_id"])}
    tmpl = rel_one(path, "template", "template", m["template_id"])
    if m["template_id"] is None:
        del tmpl["data"]
    rels["template"] = tmpl
    return resource("flow-message", m["id"], attrs, rels, ctx, path)


def ser_template(acc: Account, t: Record, ctx: Ctx) -> Record:
    path = f"templates/{t['id']}"
    attrs: dict[str, Any] = {}
    if "definition" in ctx.additional.get("template", set()):
        attrs["definition"] = {
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
    attrs.update(
        name=t["name"],
        editor_type=t["editor_type"],
        html=t["html"],
        text=t["text"],
        amp=t["amp"],
        created=fmt_dt(t["created"]),
        updated=fmt_dt(t["updated"]),
    )
    res = resource("template", t["id"], attrs, None, ctx, path)
    if "definition" in attrs:
        res["attributes"]["definition"] = attrs["definition"]
    return res


def ser_tag(acc: Account, t: Record, ctx: Ctx) -> Record:
    path = f"tags/{t['id']}"
    rels = {
        "tag-group": rel_one(path, "tag-group", "tag-group", t["tag_group_id"]),
        "lists": rel_many(path, "lists"),
        "segments": rel_many(path, "segments"),
        "campaigns": rel_many(path, "campaigns"),
        "flows": rel_many(path, "flows"),
    }
    return resource("tag", t["id"], {"name": t["name"]}, rels, ctx, path)


def ser_tag_group(acc: Account, g: Record, ctx: Ctx) -> Record:
    path = f"tag-groups/{g['id']}"
    attrs = {"name": g["name"], "exclusive": g["exclusive"], "default": g["default"]}
    return resource("tag-group", g["id"], attrs, {"tags": rel_many(path, "tags")}, ctx, path)


def ser_account(acc: Account, a: Record, ctx: Ctx) -> Record:
    attrs = {k: v for k, v in a.items() if k != "id"}
    return resource("account", a["id"], attrs, None, ctx, f"accounts/{a['id']}")


def ser_relationship_profile(acc: Account, p: Record, ctx: Ctx) -> Record:
    return {"type": "profile", "id": p["id"]}


def ser_attribution(acc: Account, a: Record, ctx: Ctx) -> Record:
    rels: dict[str, Any] = {}
    for name, rtype, key in (
        ("event", "event", "event_id"),
        ("attributed-event", "event", "attributed_event_id"),
        ("campaign", "campaign", "campaign_id"),
        ("campaign-message", "campaign-message", "campaign_message_id"),
        ("flow", "flow", "flow_id"),
        ("flow-message", "flow-message", "flow_message_id"),
    ):
        if a.get(key) is not None:
            rels[name] = {"data": {"type": rtype, "id": a[key]}}
    return {
        "type": "attribution",
        "id": a["id"],
        "relationships": rels,
        "links": {"self": f"{BASE}/attributions/{a['id']}/"},
    }


def ser_catalog_item(acc: Account, it: Record, ctx: Ctx) -> Record:
    path = f"catalog-items/{it['id']}"
    attrs = {
        k: it[k]
        for k in (
            "external_id",
            "title",
            "description",
            "price",
            "url",
            "image_full_url",
            "image_thumbnail_url",
            "images",
            "custom_metadata",
            "published",
        )
    }
    attrs["created"] = fmt_dt(it["created"])
    attrs["updated"] = fmt_dt(it["updated"])
    rels = {
        "variants": rel_many(
            path, "variants", "catalog-variant", it["variant_ids"] if "variants" in ctx.include else None
        )
    }
    return resource("catalog-item", it["id"], attrs, rels, ctx, path)


def ser_catalog_variant(acc: Account, v: Record, ctx: Ctx) -> Record:
    path = f"catalog-variants/{v['id']}"
    attrs = {
        k: v[k]
        for k in (
            "external_id",
            "title",
            "description",
            "sku",
            "inventory_policy",
            "inventory_quantity",
            "price",
            "url",
            "image_full_url",
            "image_thumbnail_url",
            "images",
            "custom_metadata",
            "published",
        )
    }
    attrs["created"] = fmt_dt(v["created"])
    attrs["updated"] = fmt_dt(v["updated"])
    rels = {"item": rel_one(path, "item", "catalog-item", v["item_id"])}
    return resource("catalog-variant", v["id"], attrs, rels, ctx, path)


def ser_catalog_category(acc: Account, c: Record, ctx: Ctx) -> Record:
    path = f"catalog-categories/{c['id']}"
    attrs = {"external_id": c["external_id"], "name": c["name"], "updated": fmt_dt(c["updated"])}
    return resource("catalog-category", c["id"], attrs, {"items": rel_many(path, "items")}, ctx, path)


def ser_coupon(acc: Account, c: Record, ctx: Ctx) -> Record:
    attrs = {
        "external_id": c["external_id"],
        "description": c["description"],
        "monitor_configuration": c["monitor_configuration"],
    }
    return resource("coupon", c["id"], attrs, None, ctx, f"coupons/{c['id']}")


def ser_coupon_code(acc: Account, cc: Record, ctx: Ctx) -> Record:
    path = f"coupon-codes/{cc['id']}"
    attrs = {"unique_code": cc["unique_code"], "expires_at": fmt_dt(cc["expires_at"]), "status": cc["status"]}
    rels: dict[str, Any] = {"coupon": rel_one(path, "coupon", "coupon", cc["coupon_id"])}
    prof = rel_one(path, "profile", "profile", cc["profile_id"])
    if cc["profile_id"] is None:
        del prof["data"]
    rels["profile"] = prof
    return resource("coupon-code", cc["id"], attrs, rels, ctx, path)


def ser_form(acc: Account, f: Record, ctx: Ctx) -> Record:
    path = f"forms/{f['id']}"
    attrs = {
        "name": f["name"],
        "status": f["status"],
        "ab_test": f["ab_test"],
        "created_at": fmt_dt(f["created_at"]),
        "updated_at": fmt_dt(f["updated_at"]),
    }
    return resource("form", f["id"], attrs, {"form-versions": rel_many(path, "form-versions")}, ctx, path)


def ser_form_version(acc: Account, v: Record, ctx: Ctx) -> Record:
    path = f"form-versions/{v['id']}"
    attrs: dict[str, Any] = {
        "form_type": v["form_type"],
        "variation_name": v["variation_name"],
        "ab_test": v["ab_test"],
        "status": v["status"],
        "created_at": fmt_dt(v["created_at"]),
        "updated_at": fmt_dt(v["updated_at"]),
    }
    if attrs["ab_test"] is None:  # a nullable $ref cannot carry null in OpenAPI 3.0: omit instead
        del attrs["ab_test"]
    rels = {"form": rel_one(path, "form", "form", v["form_id"])}
    return resource("form-version", v["id"], attrs, rels, ctx, path)


def ser_image(acc: Account, im: Record, ctx: Ctx) -> Record:
    attrs = {k: im[k] for k in ("name", "image_url", "format", "size", "hidden")}
    attrs["updated_at"] = fmt_dt(im["updated_at"])
    return resource("image", im["id"], attrs, None, ctx, f"images/{im['id']}")


# --------------------------------------------------------------------------- field getters
def _get_path(rec: Record, fieldname: str) -> Any:
    cur: Any = rec
    for part in fieldname.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def get_profile_field(p: Record, f: str) -> Any:
    if f.startswith("subscriptions.email.marketing.suppression."):
        key = f.rsplit(".", 1)[1]
        return [s[key] for s in p["suppression"]]
    if f.startswith("subscriptions.email.marketing.list_suppressions."):
        return []
    if f in ("_kx", "push_token"):
        return None
    if f == "profile_id":
        return p["id"]
    return p.get(f)


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


def get_metric_field(m: Record, f: str) -> Any:
    if f.startswith("integration."):
        return m["integration"].get(f.split(".", 1)[1])
    return m.get(f)


_CATALOG_FIELDS = {
    "ids": "id",
    "category.id": "category_ids",
    "item.id": "item_id",
    "coupon.id": "coupon_id",
    "profile.id": "profile_id",
}


def get_catalog_field(r: Record, f: str) -> Any:
    """Getter for catalog/coupon resources: maps filter names (``ids``, ``item.id``...) to record keys."""
    if f == "item.id" and "item_ids" in r:
        return r["item_ids"]
    return r.get(_CATALOG_FIELDS.get(f, f))


def get_plain(r: Record, f: str) -> Any:
    return _get_path(r, f)


def get_event_field(e: Record, f: str) -> Any:
    if f == "profile":
        return e["profile_id"]
    if f == "metric":
        return e["metric_id"]
    return e.get(f)


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


Serializer = Callable[[Account, Record, Ctx], Record]
Getter = Callable[[Record, str], Any]
