"""Derive the emulator's 2026-10-15 spec from the 2026-07-15 subset and Klaviyo's beta spec.

Klaviyo's 2026-10-15 ``stable.json`` could not be obtained; its only difference, for the operations
emulated here, is the omnichannel Campaigns API, which the beta spec of the same repository commit
carries ("will be released in GA in our 2026-10-15 revision"). See openapi-2026-10-15-subset.SOURCE.txt.

    python -m klaviyo_emulator.derive_spec /path/to/klaviyo-openapi/openapi/beta.json
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
STABLE = HERE / "openapi-2026-07-15-subset.json"
TARGET = HERE / "openapi-2026-10-15-subset.json"
REVISION = "2026-10-15"
# the beta paths that replace (or join) the 2026-07-15 campaign paths
BETA_PATHS = (
    "/api/campaigns",
    "/api/campaigns/{id}",
    "/api/campaign-messages",
    "/api/campaign-messages/{id}",
    "/api/campaigns/{id}/campaign-messages",
)


def _refs(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                out.add(value)
            else:
                _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)
    return out


def _at(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.split("/")[1:]:
        node = node[part]
    return node


def _closure(doc: dict[str, Any], start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        ref = todo.pop()
        if ref not in seen:
            seen.add(ref)
            todo.extend(_refs(_at(doc, ref), set()))
    return seen


def derive(stable: dict[str, Any], beta: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(stable)
    out["info"]["version"] = REVISION
    out["info"]["description"] += (
        " [DERIVED for revision 2026-10-15: the 2026-07-15 subset with the Campaigns operations of"
        " openapi/beta.json (2026-07-15.pre, GA in 2026-10-15); see openapi-2026-10-15-subset.SOURCE.txt]"
    )
    for path in BETA_PATHS:
        item = {"get": copy.deepcopy(beta["paths"][path]["get"])}  # reads only, like the subset
        for op in item.values():
            # the GA names drop the beta suffix (as Klaviyo's SDK 25.0.0 for 2026-10-15 shows)
            op["operationId"] = op["operationId"].removesuffix("_beta")
            for param in op.get("parameters", []):
                if param.get("in") == "header" and param.get("name") == "revision":
                    param["schema"]["default"] = REVISION
        out["paths"][path] = item
    # keep 2026-07-15's component where both specs have one of the same name (only PushActionButton
    # differs: stable has the newer `position` field); add what only beta's campaign operations use
    stable_refs = _closure(out, _refs({p: v for p, v in out["paths"].items() if p not in BETA_PATHS}, set()))
    beta_refs = _closure(beta, _refs({p: out["paths"][p] for p in BETA_PATHS}, set()))
    for ref in sorted(beta_refs):
        _, _, kind, name = ref.split("/")
        if ref not in stable_refs:
            out["components"][kind][name] = copy.deepcopy(_at(beta, ref))
    used = _closure(out, _refs(out["paths"], set()))
    for kind in ("schemas", "responses"):
        out["components"][kind] = {
            n: v for n, v in sorted(out["components"][kind].items()) if f"#/components/{kind}/{n}" in used
        }
    return out


def main(argv: list[str]) -> None:
    stable = json.loads(STABLE.read_text(encoding="utf-8"))
    beta = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    TARGET.write_text(json.dumps(derive(stable, beta), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
