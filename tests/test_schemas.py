"""The JSON Schemas editors use (`lh360 schema spec|config`, configs/.schemas/): every YAML lh360 ships
validates against them, a broken one does not, and they agree with lh360's own loader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from lh360.cli import run
from lh360.project_init import SCHEMA_FILES, schema_files
from lh360.schemas import json_schema

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {
    "config": [REPO / "configs" / "lh360.yaml", REPO / "lh360" / "templates" / "configs" / "lh360.yaml"],
    "spec": [
        *sorted((REPO / "configs" / "tables").glob("*.yaml")),
        *sorted((REPO / "lh360" / "templates" / "configs" / "tables").glob("*.yaml")),
    ],
}


def errors(kind: str, doc) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schema(kind))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("kind", ["spec", "config"])
def test_the_schemas_are_valid_json_schemas(kind):
    jsonschema.Draft202012Validator.check_schema(json_schema(kind))


@pytest.mark.parametrize("kind, path", [(k, p) for k, paths in SHIPPED.items() for p in paths], ids=str)
def test_every_shipped_yaml_validates(kind, path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema="), "editors find the schema from the first line"
    schema_ref = text.splitlines()[0].split("$schema=", 1)[1]
    # relative to where the file sits in a project (`lh360 init` writes the schemas beside the templates)
    where = "configs/lh360.yaml" if kind == "config" else "configs/tables/x.yaml"
    assert os.path.normpath(Path(where).parent / schema_ref) == SCHEMA_FILES[kind]
    assert errors(kind, yaml.safe_load(text)) == []


@pytest.mark.parametrize(
    "kind, change, where",
    [
        ("spec", lambda d: d["landing"].update(max_age="26 hours please"), "landing/max_age"),
        ("spec", lambda d: d["checks"]["silver.clientes"].append({"row_count": {"minimum": 1}}), "checks"),
        ("spec", lambda d: d["checks"]["silver.clientes"].append({"no_such_check": {}}), "checks"),
        ("spec", lambda d: d["bronze"].update(schema_evolution="addColumns"), "bronze/schema_evolution"),
        ("config", lambda d: d["targets"]["local"].update(engine="spark"), "targets/local/engine"),
        ("config", lambda d: d["targets"]["local"].update(validator="presto"), "targets/local/validator"),
    ],
    ids=["duration", "check-option", "check-kind", "evolution-mode", "engine", "validator"],
)
def test_a_broken_yaml_fails_where_it_is_broken(kind, change, where):
    path = SHIPPED[kind][0]
    doc = yaml.safe_load(path.read_text())
    change(doc)
    found = errors(kind, doc)
    assert found and any(e.startswith(where) for e in found), found


def test_the_committed_schemas_are_the_generated_ones():
    """configs/.schemas/ is what `lh360 init` writes: regenerate with `lh360 init . ` after changing a model."""
    for rel, data in schema_files().items():
        assert (REPO / rel).read_bytes() == data, f"{rel} is stale"


def test_schema_command_prints_the_schema(capsys):
    assert run(["schema", "spec"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json_schema("spec") and "checks" in printed["properties"]
