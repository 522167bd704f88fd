"""JSON Schemas of the YAML files users write, generated from the pydantic models (`lh360 schema spec|config`).

Two places where the YAML form differs from the models are described the way users write them:
  * a duration (`max_age: 26h`) is a string like 26h, 30m, 1h30m, or a number of seconds;
  * a check is a one-key mapping `{kind: params}` (`row_count: {min: 1}`, `not_null: [id, cpf]`), which
    the spec's validator reshapes into the models' `{kind: ..., ...}` form.
Editors use them through `# yaml-language-server: $schema=...` (the templates `lh360 init` writes).
"""

from __future__ import annotations

from typing import Any

from lh360.engines import ENGINES, VALIDATORS

SCHEMA_URIS = {
    "spec": "https://lh360.dev/schemas/table-spec.json",
    "config": "https://lh360.dev/schemas/lh360-config.json",
}
DURATION = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[smhdwSMHDW]\s*)+$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "a duration: 26h, 30m, 2d, 90s, 1h30m, or seconds",
}
_LIST_FORM = ("not_null", "unique", "no_pii")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a table spec (`spec`) or of lh360.yaml (`config`)."""
    if kind == "spec":
        from lh360.spec import CHECK_KINDS, TableSpec  # pydantic: off the --help path

        schema = _durations(TableSpec.model_json_schema())
        schema["properties"]["checks"]["additionalProperties"]["items"] = _check_item(schema, CHECK_KINDS)
        for name in CHECK_KINDS.values():
            schema["$defs"].pop(name.__name__, None)
    elif kind == "config":
        from lh360.config import ProjectConfig  # pydantic, yaml: off the --help path

        schema = _durations(ProjectConfig.model_json_schema())
        target = schema["$defs"]["Target"]["properties"]
        target["engine"]["enum"] = list(ENGINES)
        target["validator"]["enum"] = list(VALIDATORS)
    else:
        raise ValueError(f"no schema for {kind!r}: spec or config")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_URIS[kind], **schema}


def _durations(node: Any) -> Any:
    """Replace pydantic's ISO 8601 duration (`format: duration`) with the form lh360 reads."""
    if isinstance(node, dict):
        if node.get("format") == "duration":
            return dict(DURATION)
        return {k: _durations(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_durations(v) for v in node]
    return node


def _check_item(schema: dict[str, Any], kinds: dict[str, Any]) -> dict[str, Any]:
    """One check as written in YAML: `{kind: {params}}` (and `{not_null|unique: [columns]}`)."""
    options = []
    for kind, model in kinds.items():
        params = _inline(model.model_json_schema(), schema["$defs"])
        params["properties"].pop("kind", None)
        params.pop("title", None)
        params["required"] = [r for r in params.get("required", []) if r != "kind"]
        if not params["required"]:
            params.pop("required")
        value: dict[str, Any] = params
        if kind in _LIST_FORM:
            value = {
                "anyOf": [params, {"type": "array", "items": {"type": "string"}, "minItems": 1}, {"type": "string"}]
            }
        elif not params.get("required"):
            value = {"anyOf": [params, {"type": "null"}]}
        options.append(
            {"type": "object", "properties": {kind: value}, "required": [kind], "additionalProperties": False}
        )
    return {"oneOf": options, "description": "a one-key mapping {kind: options}; kinds: " + ", ".join(kinds)}


def _inline(model_schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    model_schema = _durations(model_schema)
    model_schema.pop("$defs", None)
    return model_schema
