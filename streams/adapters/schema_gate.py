"""A fast yes/no for a JSON Schema, compiled from the same schema file as the slow, explaining check.

`jsonschema` walks a schema for every document (~150 µs for an import line) because it
collects every error and the path to it, which is what a person needs to fix a bad line.
A good line needs no explanation, so the happy path asks `fastjsonschema` (the schema turned
into Python code once, ~10 µs a line) and only a document it refuses goes to `jsonschema`,
which gives the message and has the last word. The rule stays in one place, the schema file.

`fastjsonschema` knows draft 07; our schemas are draft 2020-12 but use only keywords that mean
the same in both, once `$defs` and `dependentRequired` are spelled the draft-07 way. Any other
keyword is refused when the gate is built, so a schema change that the translation does not
cover fails at start (and in tests), never by letting a bad document through.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import fastjsonschema

# Keywords whose draft-07 meaning is the 2020-12 one (`items` only as one schema, never an array).
_SAME = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "pattern",
        "propertyNames",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "format",
    }
)
# Annotations: neither validator checks them (`default` is also not filled in, see below).
_ANNOTATIONS = frozenset({"title", "description", "default", "$comment", "contentEncoding", "examples"})
_LOCAL_REF = "#/$defs/"


class UntranslatableSchema(ValueError):
    """The schema uses a keyword the gate cannot check the way jsonschema does."""


def _translate(node: Any, where: str, root: bool = False) -> Any:
    if not isinstance(node, dict):
        raise UntranslatableSchema(f"{where}: a schema must be an object, got {type(node).__name__}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        at = f"{where}/{key}"
        if key in _ANNOTATIONS or (root and key in ("$schema", "$id")):
            continue
        if root and key == "$defs":
            out["definitions"] = {name: _translate(s, f"{at}/{name}") for name, s in value.items()}
        elif key == "$ref":
            if not (isinstance(value, str) and value.startswith(_LOCAL_REF)):
                raise UntranslatableSchema(f"{at}: only local references to #/$defs/ are supported")
            out["$ref"] = "#/definitions/" + value[len(_LOCAL_REF) :]
        elif key == "dependentRequired":
            out["dependencies"] = {name: list(names) for name, names in value.items()}
        elif key == "properties":
            out[key] = {name: _translate(s, f"{at}/{name}") for name, s in value.items()}
        elif key in ("items", "additionalProperties", "propertyNames", "if", "then", "else", "not"):
            if key == "items" and isinstance(value, list):
                raise UntranslatableSchema(f"{at}: items as an array means prefixItems in 2020-12")
            out[key] = value if isinstance(value, bool) else _translate(value, at)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_translate(s, f"{at}/{i}") for i, s in enumerate(value)]
        elif key in _SAME:
            out[key] = copy.deepcopy(value)
        else:
            raise UntranslatableSchema(f"{at}: the keyword {key!r} has no checked draft-07 equivalent")
    if root:
        out["$schema"] = "http://json-schema.org/draft-07/schema#"
    return out


def compile_gate(
    schema: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]] | None = None
) -> Callable[[Any], bool]:
    """True only for a document the schema accepts; False means: ask jsonschema why not.

    `formats` are the same checks jsonschema's format checker is given, so "format" means the
    same to both. Defaults are never filled in: the document is not changed.
    """
    if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
        raise UntranslatableSchema(f"$schema: {schema.get('$schema')!r} is not draft 2020-12")
    check = fastjsonschema.compile(
        _translate(dict(schema), "#", root=True),
        formats=dict(formats or {}),
        use_default=False,
    )

    def gate(doc: Any) -> bool:
        try:
            check(doc)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return gate
