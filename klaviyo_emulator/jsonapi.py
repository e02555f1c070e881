"""One JSON:API serialiser for every resource, driven by the spec's response schemas.

An operation's 200 response schema names, per revision, the attributes of its resources (in order,
with whether each may be null), their relationships (to-one, to-many, or links only, with the
related type) and whether a resource carries ``links``. :func:`serializer` renders any account
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


Serializer = Callable[[Store, Record, Ctx], Record]
_SERIALIZERS: dict[tuple[int, int], tuple[Resource, Shape, Serializer]] = {}


def serializer(res: Resource, shape: Shape) -> Serializer:
    """The function rendering records of ``res`` as resource objects of ``shape``: exactly the members
    the response schema declares. Made once per pair: it runs for every record of every page, so
    where each attribute and relationship comes from is decided here, not per record."""
    cached = _SERIALIZERS.get((id(res), id(shape)))
    if cached is None:
        cached = (res, shape, _serializer(res, shape))  # holds res and shape, so their ids stay theirs
        _SERIALIZERS[(id(res), id(shape))] = cached
    return cached[2]


def _attributes_of(res: Resource, shape: Shape) -> Callable[[Store, Record, Ctx], dict[str, Any]]:
    rtype = shape.rtype
    # (name, record key, compute or None, may be null, sent only when asked for as additional)
    plan = tuple(
        (n, res.renamed.get(n, n), res.computed.get(n), n in shape.nullable, n in shape.additional)
        for n in shape.attributes or ()
    )

    always = tuple(attr for attr in plan if not attr[4])

    def attributes(acc: Store, rec: Record, ctx: Ctx) -> dict[str, Any]:
        asked = ctx.additional.get(rtype, ())
        out: dict[str, Any] = {}
        for name, key, compute, nullable, additional in plan if asked else always:
            if additional and name not in asked:
                continue
            if compute is not None:
                value = compute(acc, rec)
            elif key in rec:
                value = rec[key]
                if isinstance(value, datetime):
                    value = fmt_dt(value)
            else:
                continue
            if value is not None or nullable:
                out[name] = value
        wanted = ctx.fields.get(rtype)
        if wanted is None:
            return out
        projected = project(out, wanted)
        for name in asked:  # asked-for additional fields are sent whatever the sparse fieldset
            if name in out:
                projected[name] = out[name]
        return projected

    return attributes


def _relationships_of(res: Resource, shape: Shape) -> Callable[[Store, Record, Ctx], dict[str, Any]]:
    # (name, related type, record key of a to-one's id or None, to-many or not, links suffixes)
    plan = tuple(
        (
            rel.name,
            rel.rtype,
            res.to_one.get(rel.name, rel.name.replace("-", "_") + "_id") if rel.kind == "one" else None,
            rel.kind == "many",
            f"/relationships/{rel.name}/",
            f"/{rel.name}/",
        )
        for rel in shape.relationships
    )
    prefix = f"{BASE}/{res.collection or res.rtype + 's'}/"
    with_links = res.relationship_links

    def relationships(acc: Store, rec: Record, ctx: Ctx) -> dict[str, Any]:
        path = prefix + rec["id"]
        out: dict[str, Any] = {}
        for name, rtype, one_key, many, self_suffix, related_suffix in plan:
            obj: dict[str, Any] = {}
            if one_key is not None and rec.get(one_key) is not None:
                obj["data"] = {"type": rtype, "id": rec[one_key]}
            elif many and name in ctx.include:
                ids = res.many_ids(acc, rec, name)
                if ids is not None:
                    obj["data"] = [{"type": rtype, "id": i} for i in ids]
            if with_links:
                obj["links"] = {"self": path + self_suffix, "related": path + related_suffix}
            if obj:
                out[name] = obj
        return out

    return relationships


def _serializer(res: Resource, shape: Shape) -> Serializer:
    rtype = shape.rtype
    attributes = _attributes_of(res, shape) if shape.attributes is not None else None
    relationships = _relationships_of(res, shape) if shape.relationships else None
    prefix = f"{BASE}/{res.collection or res.rtype + 's'}/" if shape.links else None

    def render(acc: Store, rec: Record, ctx: Ctx) -> Record:
        doc: Record = {"type": rtype, "id": rec["id"]}
        if attributes is not None:
            doc["attributes"] = attributes(acc, rec, ctx)
        if relationships is not None:
            doc["relationships"] = relationships(acc, rec, ctx)
        if prefix is not None:
            doc["links"] = {"self": prefix + rec["id"] + "/"}
        return doc

    return render


def related(acc: Store, res: Resource, shape: Shape, rec: Record, name: str) -> tuple[str, list[str]]:
    """The related type and ids of relationship ``name`` of ``rec`` (what ``include=name`` adds)."""
    rel = next((r for r in shape.relationships if r.name == name), None)
    if rel is None or rel.kind == "links":
        return "", []
    if rel.kind == "one":
        rid = res.one_id(rec, name)
        return rel.rtype, [rid] if rid is not None else []
    return rel.rtype, res.many_ids(acc, rec, name) or []
