"""The engine registry: an engine's name in a target (`engine: local`) → the class that runs its steps, and a
validator's name (`validator: athena`) → the factory of its query runner.

Entries are "module:attribute" strings, imported on first use, so loading a config never imports an
engine (nor its heavy libraries). Adding an engine is adding a package and a line here; nothing outside
`lh360/engines/` compares an engine or validator name.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from lh360.engines.base import EngineOptions

if TYPE_CHECKING:
    from lh360.config import ResolvedTarget
    from lh360.engines.base import Engine


@dataclass(frozen=True)
class Registration:
    ref: str  # "package.module:attribute"
    needs: tuple[str, ...] = ()  # target settings that must be set: "databricks", "databricks.warehouse_id"
    dialect: str | None = None  # validators: the SQL dialect their checks compile to
    embedded: bool = False  # runs on this machine with no cloud account (what `lh360 demo` needs)
    ansi_sql: bool = False  # runs spec SQL in Spark's ANSI mode: one bad value in a cast fails the batch

    def load(self) -> Any:
        module, _, attr = self.ref.partition(":")
        return getattr(import_module(module), attr)


ENGINES: dict[str, Registration] = {
    "local": Registration("lh360.engines.local:LocalEngine", embedded=True),
    "databricks": Registration("lh360.engines.databricks:DatabricksEngine", needs=("databricks",), ansi_sql=True),
}

VALIDATORS: dict[str, Registration] = {
    "duckdb": Registration("lh360.engines.local.query:make_runner", dialect="duckdb"),
    "athena": Registration("lh360.engines.athena.query:make_runner", needs=("athena",), dialect="athena"),
    "databricks-sql": Registration(
        "lh360.engines.databricks.statements:make_runner", needs=("databricks.warehouse_id",), dialect="databricks"
    ),
}


def register_engine(name: str, ref: str, *, needs: tuple[str, ...] = ()) -> None:
    """Add (or replace) an engine, e.g. a test double: register_engine("fake", "tests.fakes.engine:FakeEngine")."""
    ENGINES[name] = Registration(ref, needs)


def engine_for(target: ResolvedTarget, options: EngineOptions | None = None, **kwargs: Any) -> Engine:
    """The engine of `target`, built with the command's options (and test overrides in `kwargs`)."""

    cls = ENGINES[target.engine].load()
    return cls(target, options or EngineOptions(), **kwargs)


def validator_dialect(name: str) -> str:
    return VALIDATORS[name].dialect or name


def missing_settings(kind: str, name: str, settings: Any) -> str | None:
    """Why `settings` (a target) cannot run `name` as its `kind` ("engine" or "validator"), or None."""
    registry = ENGINES if kind == "engine" else VALIDATORS
    for path in registry[name].needs:
        value: Any = settings
        for part in path.split("."):
            value = getattr(value, part, None)
        if not value:
            what = f"a {path} section" if "." not in path else path
            return f"{kind}: {name} needs {what}"
    return None


def choices(registry: dict[str, Registration]) -> str:
    """'a', 'b' or 'c': the names a setting may take, as config errors list them."""
    names = [repr(n) for n in registry]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
