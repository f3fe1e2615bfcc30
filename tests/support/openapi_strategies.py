"""Hypothesis strategies for request bodies, generated from OpenAI's own schemas.

``body_strategy("CreateChatCompletionRequest")`` draws JSON objects valid against that schema
as it appears in ``openapi.yaml`` (read from the subset in ``tests/data/openapi``). The
generator understands the keywords the spec uses for requests — ``$ref``, ``allOf``,
``anyOf``/``oneOf``, ``type`` (also lists), ``nullable``, ``enum``/``const``, ``properties``
/``required``/``additionalProperties``, ``items``/``minItems``/``maxItems``, numeric bounds,
string lengths, ``format: uri`` — and keeps sizes small: arrays of at most three items,
optional properties drawn as a random subset, recursion cut at a fixed depth by taking the
shortest valid form.

It is written for any request schema; the fuzz tests use it for chat completions,
``CreateResponse`` and ``CreateEmbeddingRequest``.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

from hypothesis import strategies as st

from tests.support.openapi_subset import SUBSET

MAX_ITEMS = 3
MAX_DEPTH = 7
_PREFIX = "#/components/schemas/"

# Text the model reads: mostly words, sometimes any unicode (no surrogates: not valid JSON).
_WORDS = st.lists(st.sampled_from(["hello", "order", "refund", "the", "is", "late", "please",
                                   "help", "with", "my", "account", "ok", "?", "."]),
                  min_size=0, max_size=8).map(" ".join)
TEXT = st.one_of(_WORDS, st.text(st.characters(exclude_categories=("Cs",)), max_size=40))


@cache
def schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SUBSET.read_text())["schemas"]
    return loaded


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema or "$recursiveRef" in schema:
        ref = schema.get("$ref") or schema["$recursiveRef"]
        rest = {k: v for k, v in schema.items() if k not in ("$ref", "$recursiveRef")}
        schema = {**schemas()[ref.removeprefix(_PREFIX)], **rest}
    return schema


def merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` as one schema: properties and required lists united, the rest layered."""
    parts = [resolve(p) for p in schema.get("allOf", [])]
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        part = merge_all_of(part) if "allOf" in part else part
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = sorted({*merged.get("required", []), *value})
            else:
                merged.setdefault(key, value)
    if "properties" in merged:
        merged.setdefault("type", "object")
    return merged


def body_strategy(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid request bodies for the schema called ``name`` in ``components/schemas``."""
    return from_schema(schemas()[name], 0).filter(lambda b: isinstance(b, dict))


_BUILT: dict[tuple[int, int], tuple[dict[str, Any], st.SearchStrategy[Any]]] = {}


def from_schema(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    """Lazily (a sub-schema's strategy is built when a draw first reaches it) and once."""
    key = (id(schema), depth)
    if key not in _BUILT:  # the schema is kept with it, so its id stays unique
        _BUILT[key] = (schema, st.deferred(lambda: _build(schema, depth)))
    return _BUILT[key][1]


def _build(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    schema = resolve(schema)
    if "allOf" in schema:
        schema = merge_all_of(schema)
    nullable = schema.get("nullable") is True
    strategy = _non_null(schema, depth)
    return st.one_of(strategy, st.none()) if nullable else strategy


def _non_null(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            options = [merge_all_of({"allOf": [base, option]}) if base else option
                       for option in schema[key]]
            if depth >= MAX_DEPTH:  # the shortest way out: options that do not nest
                flat = [o for o in options if _is_flat(resolve(o))]
                options = flat or options[:1]
            return st.one_of(*(from_schema(o, depth + 1) for o in options))
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(_non_null({**schema, "type": k}, depth) for k in kind if k != "null"),
                         *([st.none()] if "null" in kind else []))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(min_value=_bound(schema, "minimum", -(2**31)),
                           max_value=_bound(schema, "maximum", 2**31))
    if kind == "number":
        return st.floats(min_value=_bound(schema, "minimum", -1e6),
                         max_value=_bound(schema, "maximum", 1e6), allow_nan=False,
                         allow_infinity=False, exclude_min="exclusiveMinimum" in schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return _array(schema, depth)
    if kind == "object" or "properties" in schema:
        return _object(schema, depth)
    if kind == "null":
        return st.none()
    return _json_value()  # no constraint: any JSON value


def _bound(schema: dict[str, Any], key: str, default: float) -> Any:
    value = schema.get(key, default)
    return value if isinstance(value, int | float) and math.isfinite(value) else default


# ``format: uri`` (image, file and server urls): http(s) URLs, and the data URLs the API
# also takes for images. Any string would not be valid against the schema, and Guard refuses
# an image url that is neither, as OpenAI does.
URI = st.one_of(
    st.builds("https://{}/{}".format, st.sampled_from(["example.com", "cdn.example.org"]),
              st.from_regex(r"[a-z0-9_.-]{0,16}", fullmatch=True)),
    st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "data:image/jpeg;base64,/9j/4AAQ"]),
)


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if schema.get("format") == "uri":
        return URI
    low = int(schema.get("minLength", 0))
    high = min(int(schema.get("maxLength", 60)), max(low, 60))
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= max(high, low))
    if low == 0 and high >= 60:
        return TEXT
    return st.text(st.characters(exclude_categories=("Cs",)), min_size=low,
                   max_size=max(high, low))


def _array(schema: dict[str, Any], depth: int) -> st.SearchStrategy[list[Any]]:
    low = int(schema.get("minItems", 0))
    high = min(int(schema.get("maxItems", MAX_ITEMS)), max(low, MAX_ITEMS))
    if depth >= MAX_DEPTH:
        high = low
    if high == 0:
        return st.just([])
    return st.lists(from_schema(schema.get("items", {}), depth + 1), min_size=low,
                    max_size=high)


def _object(schema: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = [k for k in schema.get("required", []) if k in properties]
    optional = [k for k in properties if k not in required]
    extra = schema.get("additionalProperties")
    if not properties and extra not in (None, False):
        values = from_schema(extra, depth + 1) if isinstance(extra, dict) else _json_value()
        return st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=MAX_ITEMS)
    if depth >= MAX_DEPTH:
        optional = []
    return st.fixed_dictionaries({k: from_schema(properties[k], depth + 1) for k in required},
                                 optional={k: from_schema(properties[k], depth + 1)
                                           for k in optional})


def _is_flat(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return "enum" in schema or "const" in schema or kind in (
        "string", "integer", "number", "boolean", "null")


def _json_value() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), TEXT,
                       st.floats(allow_nan=False, allow_infinity=False, width=32))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=MAX_ITEMS),
        st.dictionaries(st.text(max_size=8), inner, max_size=MAX_ITEMS)), max_leaves=6)
