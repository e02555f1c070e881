"""One JSON:API serialiser for every resource, driven by the spec's response schemas.

An operation's 200 response schema names, per revision, the attributes of its resources (in order,
with whether each may be null), their relationships (to-one, to-many, or links only, with the
related type) and whether a resource carries ``links``. :func:`serialize` renders any account
record from that shape and a :class:`Resource` row, which says only what the schema cannot: where
the records live and what Klaviyo computes (:attr:`Resource.computed`).

Links are rendered with the placeholder :data:`BASE`; the server replaces it with the absolute
``http://host:port/api`` prefix of the request (so pre-serialised fragments can be reused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from .spec import operations, schema
from .store import Store, fmt_dt

BASE = "@@KLAVIYO_EMULATOR_BASE@@"
Record = dict[str, Any]
Compute = Callable[[Store, Record], Any]
Ids = Callable[[Store, Record], list[str]]


class NotFound(Exception):
    """Unknown parent / resource id."""


@dataclass
class Ctx:
    """Per-request serialisation options."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    include: set[str] = field(default_factory=set)
    additional: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """A resource type as the account holds it; everything else comes from the spec.

    An attribute is the record's value of the same name (datetimes formatted), unless ``renamed``
    points at another key or ``computed`` computes it. A to-one relationship's id is the record's
    ``<name>_id`` (or ``to_one[name]``); a to-many relationship lists ids (``to_many[name]``: a
    record key or a function) only when it is included, as Klaviyo does.
    """

    rtype: str
    table: str  # the Store attribute holding the records by id
    collection: str = ""  # URL segment of ``links.self``; default ``<rtype>s``
    computed: Mapping[str, Compute] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)
    to_one: Mapping[str, str] = field(default_factory=dict)
    to_many: Mapping[str, str | Ids] = field(default_factory=dict)
    relationship_links: bool = True  # False: relationships carry only data (attributions)

    def path(self, rid: str) -> str:
        return f"{BASE}/{self.collection or self.rtype + 's'}/{rid}"

    def one_id(self, rec: Record, name: str) -> Any:
        return rec.get(self.to_one.get(name, name.replace("-", "_") + "_id"))

    def many_ids(self, acc: Store, rec: Record, name: str) -> list[str] | None:
        source = self.to_many.get(name)
        if source is None:
            return None
        return list(rec.get(source, ())) if isinstance(source, str) else source(acc, rec)


@dataclass(frozen=True)
class Relationship:
    name: str
    kind: str  # "one" | "many" | "links"
    rtype: str  # the related resource type ("" for links only)


@dataclass(frozen=True)
class Shape:
    """What a response schema says one resource object holds."""

    rtype: str
    attributes: tuple[str, ...] | None  # None: no ``attributes`` member
    nullable: frozenset[str]
    relationships: tuple[Relationship, ...]
    links: bool
    additional: frozenset[str] = frozenset()  # attributes sent only when asked by additional-fields


# --------------------------------------------------------------------------- shapes from the spec
def _deref(node: dict[str, Any], revision: str) -> dict[str, Any]:
    while "$ref" in node:
        node = schema(node["$ref"], revision)
    return node


def _properties(node: dict[str, Any], revision: str) -> dict[str, Any]:
    """Merged ``properties`` of a schema and its ``allOf`` parts, in order."""
    node = _deref(node, revision)
    props: dict[str, Any] = {}
    for part in node.get("allOf", ()):
        for name, prop in _properties(part, revision).items():
            if isinstance(props.get(name), dict) and isinstance(prop, dict) and name != "type":
                props[name] = {
                    "properties": {**_properties(props[name], revision), **_properties(prop, revision)}
                }
            else:
                props.setdefault(name, prop)
    for name, prop in node.get("properties", {}).items():
        props.setdefault(name, prop)
    return props


def _type_of(node: dict[str, Any], revision: str) -> str:
    enum = _deref(_properties(node, revision).get("type", {}), revision).get("enum") or [""]
    return str(enum[0])


def _relationship(name: str, node: dict[str, Any], revision: str) -> Relationship:
    data = _properties(node, revision).get("data")
    if data is None:
        return Relationship(name, "links", "")
    data = _deref(data, revision)
    if data.get("type") == "array":
        return Relationship(name, "many", _type_of(data["items"], revision))
    return Relationship(name, "one", _type_of(data, revision))


def _can_be_null(prop: dict[str, Any]) -> bool:
    # OpenAPI 3.0: ``nullable`` only counts beside a ``type``; a nullable $ref/oneOf cannot carry null
    return bool(prop.get("nullable")) and "type" in prop


def _shape(node: dict[str, Any], revision: str, additional: frozenset[str]) -> Shape:
    props = _properties(node, revision)
    attrs = _properties(props["attributes"], revision) if "attributes" in props else None
    rels = _properties(props["relationships"], revision) if "relationships" in props else {}
    return Shape(
        rtype=_type_of(node, revision),
        attributes=tuple(attrs) if attrs is not None else None,
        nullable=frozenset(n for n, p in (attrs or {}).items() if _can_be_null(p)),
        relationships=tuple(_relationship(n, p, revision) for n, p in rels.items()),
        links="links" in props,
        additional=additional,
    )


@cache
def data_shape(operation_id: str, revision: str) -> Shape:
    """The shape of the primary data of an operation's response."""
    op = operations(revision)[operation_id]
    data = schema(op.response_schema_ref, revision)["properties"]["data"]
    item = _deref(data, revision)
    item = item.get("items", item) if item.get("type") == "array" else data
    shape = _shape(item, revision, frozenset())
    return _shape(item, revision, op.additional_fields.get(shape.rtype, frozenset()))


@cache
def included_shapes(operation_id: str, revision: str) -> dict[str, Shape]:
    """The shapes of the resources an operation's compound document may include, by type."""
    op = operations(revision)[operation_id]
    included = schema(op.response_schema_ref, revision)["properties"].get("included")
    if included is None:
        return {}
    items = included["items"]
    shapes = (_shape(item, revision, frozenset()) for item in items.get("oneOf", [items]))
    return {s.rtype: s for s in shapes}


# --------------------------------------------------------------------------- serialisation
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


def _attribute(acc: Store, res: Resource, rec: Record, name: str) -> tuple[bool, Any]:
    compute = res.computed.get(name)
    if compute is not None:
        return True, compute(acc, rec)
    key = res.renamed.get(name, name)
    if key not in rec:
        return False, None
    value = rec[key]
    return True, fmt_dt(value) if isinstance(value, datetime) else value


def attributes(acc: Store, res: Resource, shape: Shape, rec: Record, ctx: Ctx) -> dict[str, Any]:
    asked = ctx.additional.get(shape.rtype, set())
    out: dict[str, Any] = {}
    for name in shape.attributes or ():
        if name in shape.additional and name not in asked:
            continue
        present, value = _attribute(acc, res, rec, name)
        if present and (value is not None or name in shape.nullable):
            out[name] = value
    wanted = ctx.fields.get(shape.rtype)
    if wanted is None:
        return out
    projected = project(out, wanted)
    for name in asked:  # asked-for additional fields are sent whatever the sparse fieldset
        if name in out:
            projected[name] = out[name]
    return projected


def relationships(acc: Store, res: Resource, shape: Shape, rec: Record, ctx: Ctx) -> dict[str, Any]:
    path = res.path(rec["id"])
    out: dict[str, Any] = {}
    for rel in shape.relationships:
        obj: dict[str, Any] = {}
        if rel.kind == "one" and res.one_id(rec, rel.name) is not None:
            obj["data"] = {"type": rel.rtype, "id": res.one_id(rec, rel.name)}
        elif rel.kind == "many" and rel.name in ctx.include:
            ids = res.many_ids(acc, rec, rel.name)
            if ids is not None:
                obj["data"] = [{"type": rel.rtype, "id": i} for i in ids]
        if res.relationship_links:
            obj["links"] = {"self": f"{path}/relationships/{rel.name}/", "related": f"{path}/{rel.name}/"}
        if obj:
            out[rel.name] = obj
    return out


def serialize(acc: Store, res: Resource, shape: Shape, rec: Record, ctx: Ctx) -> Record:
    """One resource object, exactly the members its response schema declares."""
    doc: Record = {"type": shape.rtype, "id": rec["id"]}
    if shape.attributes is not None:
        doc["attributes"] = attributes(acc, res, shape, rec, ctx)
    if shape.relationships:
        doc["relationships"] = relationships(acc, res, shape, rec, ctx)
    if shape.links:
        doc["links"] = {"self": f"{res.path(rec['id'])}/"}
    return doc


def related(acc: Store, res: Resource, shape: Shape, rec: Record, name: str) -> tuple[str, list[str]]:
    """The related type and ids of relationship ``name`` of ``rec`` (what ``include=name`` adds)."""
    rel = next((r for r in shape.relationships if r.name == name), None)
    if rel is None or rel.kind == "links":
        return "", []
    if rel.kind == "one":
        rid = res.one_id(rec, name)
        return rel.rtype, [rid] if rid is not None else []
    return rel.rtype, res.many_ids(acc, rec, name) or []
