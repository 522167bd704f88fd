"""The project config (`configs/lh360.yaml`) and the project it describes: targets and table specs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lh360 import engines
from lh360.durations import parse_duration
from lh360.errors import ConfigError
from lh360.spec import CHECK_KINDS, Duration, Maintenance, TableSpec
from lh360.yamlio import SourceMap, dotted, expand_env, line_of, load_source, path_matcher

DEFAULT_CONFIG = Path("configs") / "lh360.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(Strict):
    region: str | None = None
    profile: str | None = None  # a named profile; unset or "" means the default credential chain
    endpoint_url: str | None = None  # S3's alone: an S3-compatible store (MinIO, a moto server in tests)
    endpoints: dict[Literal["athena", "glue", "sts"], str] = Field(default_factory=dict)  # the other services'
    # an S3 landing zone's listing (lh360.listing): a full listing at least this often, to find late uploads
    full_listing_interval: Duration = timedelta(hours=24)
    # the listing watermark stays below any key modified less than this long ago (an upload that started
    # earlier with a smaller key may not be listable yet) and below every multipart upload in progress
    listing_lag: Duration = timedelta(minutes=30)

    @field_validator("full_listing_interval", "listing_lag")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("region", "profile", "endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        """`${LH360_AWS_PROFILE:-}` expands to "" when the variable is unset or empty: that means none."""
        return None if isinstance(v, str) and not v.strip() else v


class ExistingCluster(Strict):
    existing_cluster_id: str


class NewCluster(Strict):
    new_cluster: dict[str, Any]


class RunViewer(Strict):
    """Who may open the run pages of submitted runs (CAN_VIEW): exactly one of group, user, service_principal."""

    group: str | None = None
    user: str | None = None
    service_principal: str | None = None  # its application id

    @model_validator(mode="after")
    def _one(self) -> RunViewer:
        if sum(x is not None for x in (self.group, self.user, self.service_principal)) != 1:
            raise ValueError("give exactly one of group, user or service_principal")
        return self

    def acl(self) -> dict[str, str]:
        """Its entry of a jobs.submit access_control_list."""
        if self.group is not None:
            return {"group_name": self.group, "permission_level": "CAN_VIEW"}
        if self.user is not None:
            return {"user_name": self.user, "permission_level": "CAN_VIEW"}
        return {"service_principal_name": str(self.service_principal), "permission_level": "CAN_VIEW"}


DEFAULT_DATABRICKS_TIMEOUT = "6h"


class DatabricksSettings(Strict):
    profile: str | None = None
    host: str | None = None
    catalog: str
    compute: Literal["serverless"] | ExistingCluster | NewCluster = "serverless"
    warehouse_id: str | None = None
    workspace_dir: str = "/Workspace/Shared/lh360"
    # each run (and SQL statement) still going after this is cancelled and the step exits 4; a default of
    # hours, never infinity: a run stuck in a state nobody expected must not hold cron forever
    timeout: str = DEFAULT_DATABRICKS_TIMEOUT
    aggregate_on: Literal["job", "warehouse"] = "job"
    # the Databricks secret ("scope/key") holding the PII key for silver.pii's `hash` on the job (never YAML)
    pii_secret: str | None = Field(None, pattern=r"^[^/\s]+/[^/\s]+$")
    # groups (a plain string), or {user: …} / {service_principal: …}, granted CAN_VIEW on every submitted run
    run_viewers: list[RunViewer] = []

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        try:
            seconds = parse_duration(v).total_seconds()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if seconds <= 0:
            raise ValueError("must be more than 0 seconds")
        return v

    @field_validator("run_viewers", mode="before")
    @classmethod
    def _group_names(cls, v: Any) -> Any:
        return [{"group": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v


class AthenaSettings(Strict):
    workgroup: str = "primary"
    databases: dict[Literal["bronze", "silver", "gold", "ledger"], str]
    output: str | None = None
    timeout: str | None = None
    # USD per TB scanned, for cost estimates; default: the region's list price (lh360.engines.athena.query)
    price_per_tb_usd: float | None = Field(None, ge=0)
    # tables with more rows than this (Delta log statistics) check `unique` in a query of their own, so the
    # fused scan does not hold an exact COUNT(DISTINCT) per key in memory; null: always fused
    unique_alone_rows: int | None = Field(50_000_000, ge=0)

    @field_validator("databases")
    @classmethod
    def _layers(cls, v: dict) -> dict:
        missing = {"bronze", "silver", "gold"} - set(v)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        return v


class Target(Strict):
    engine: str = "local"  # a name in lh360.engines.ENGINES
    landing: str
    lake: str
    validator: str = "duckdb"  # a name in lh360.engines.VALIDATORS
    aws: AwsSettings = AwsSettings()
    databricks: DatabricksSettings | None = None
    athena: AthenaSettings | None = None
    maintenance: Maintenance = Maintenance()  # when `run` compacts, checkpoints, cleans logs and vacuums

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        if v not in engines.ENGINES:
            raise ValueError(f"must be one of {engines.choices(engines.ENGINES)} (got {v!r})")
        return v

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, v: str) -> str:
        if v not in engines.VALIDATORS:
            raise ValueError(f"must be one of {engines.choices(engines.VALIDATORS)} (got {v!r})")
        return v

    @model_validator(mode="after")
    def _sections(self) -> Target:
        # each engine and validator names the settings it cannot run without (lh360.engines)
        problem = engines.missing_settings("engine", self.engine, self) or engines.missing_settings(
            "validator", self.validator, self
        )
        if problem:
            raise ValueError(problem)
        return self


class ProjectConfig(Strict):
    project: str
    default_target: str | None = None
    tables_dir: str = "tables"
    targets: dict[str, Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _default(self) -> ProjectConfig:
        if self.default_target is not None and self.default_target not in self.targets:
            raise ValueError(f"default_target {self.default_target!r} is not one of: {', '.join(self.targets)}")
        return self


# The lh360.yaml fields where ${VAR} and ${VAR:-default} are expanded from the environment: where a
# deployment differs (folders, buckets, profiles, workspace ids). Nowhere else, and never in table specs:
# spec SQL runs with the ops box's environment, and a spec author must not be able to copy it into a table.
ENV_FIELDS: tuple[tuple[str, ...], ...] = (
    ("targets", "*", "landing"),
    ("targets", "*", "lake"),
    ("targets", "*", "aws", "*"),
    ("targets", "*", "databricks", "profile"),
    ("targets", "*", "databricks", "host"),
    ("targets", "*", "databricks", "catalog"),
    ("targets", "*", "databricks", "warehouse_id"),
    ("targets", "*", "databricks", "workspace_dir"),
    ("targets", "*", "databricks", "timeout"),
    ("targets", "*", "databricks", "compute", "existing_cluster_id"),
    ("targets", "*", "databricks", "compute", "new_cluster", "**"),
    ("targets", "*", "athena", "workgroup"),
    ("targets", "*", "athena", "output"),
    ("targets", "*", "athena", "timeout"),
    ("targets", "*", "athena", "databases", "*"),
)
ENV_FIELDS_TEXT = (
    "a target's landing, lake, aws.*, databricks.{profile, host, catalog, warehouse_id, workspace_dir, timeout, "
    "compute}, athena.{workgroup, output, timeout, databases}"
)


@dataclass
class Project:
    """A loaded project: where it lives, its config, and its table specs by name."""

    config_path: Path
    config: ProjectConfig
    specs: dict[str, TableSpec] = field(default_factory=dict)
    spec_files: dict[str, Path] = field(default_factory=dict)
    config_source: SourceMap | None = None  # lines of lh360.yaml, for errors found after loading

    def source_of(self, file: str | None) -> SourceMap | None:
        """The source map of a file this project loaded (config or spec), to find an error's line."""
        if self.config_source is not None and file == self.config_source.file:
            return self.config_source
        for spec in self.specs.values():
            if spec.source_map is not None and spec.source_map.file == file:
                return spec.source_map
        return None

    @property
    def root(self) -> Path:
        return self.config_path.parent

    def target(self, name: str | None = None) -> ResolvedTarget:
        name = name or self.config.default_target
        if not name:
            if len(self.config.targets) == 1:
                name = next(iter(self.config.targets))
            else:
                raise ConfigError("no target given: pass --target or set default_target", file=str(self.config_path))
        if name not in self.config.targets:
            raise ConfigError(
                f"unknown target {name!r}; targets: {', '.join(self.config.targets)}",
                file=str(self.config_path),
                field="targets",
            )
        t = self.config.targets[name]
        return ResolvedTarget(
            name=name,
            settings=t,
            landing=resolve_uri(t.landing, self.root),
            lake=resolve_uri(t.lake, self.root),
            config_source=self.config_source,
        )

    def select(self, tables: list[str] | tuple[str, ...] | None) -> list[TableSpec]:
        """The specs named (all when none are), in name order; an unknown name is a usage error."""
        if not tables:
            return [self.specs[n] for n in sorted(self.specs)]
        unknown = [t for t in tables if t not in self.specs]
        if unknown:
            known = ", ".join(sorted(self.specs)) or "none"
            raise ConfigError(f"no spec for table {', '.join(unknown)} (tables: {known})", file=str(self.tables_dir))
        return [self.specs[t] for t in dict.fromkeys(tables)]

    @property
    def tables_dir(self) -> Path:
        return (self.root / self.config.tables_dir).resolve()


@dataclass(frozen=True)
class ResolvedTarget:
    name: str
    settings: Target
    landing: str  # absolute folder path or s3:// URI
    lake: str
    config_source: SourceMap | None = field(
        default=None, compare=False, repr=False
    )  # lh360.yaml: errors name its lines

    @property
    def engine(self) -> str:
        return self.settings.engine


def resolve_uri(value: str, base: Path) -> str:
    if "://" in value:
        return value.rstrip("/")
    p = Path(os.path.expanduser(value))
    return str((p if p.is_absolute() else base / p).resolve())


def find_config(explicit: str | Path | None = None, start: Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_CONFIG
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {DEFAULT_CONFIG} here or in any parent folder (run `lh360 init`, or pass --config / set LH360_CONFIG)"
    )


def validation_errors(exc: ValidationError, data: Any, file: Path, prefix: tuple = ()) -> list[ConfigError]:
    """pydantic errors → ConfigErrors with the line of the offending key and a dotted field path."""
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if p not in CHECK_UNION_TAGS]
        field_path = dotted((*prefix, *loc))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] in ("literal_error", "enum") and "expected" in err.get("ctx", {}):
            msg = f"must be one of {err['ctx']['expected']} (got {err.get('input')!r})"
        out.append(ConfigError(msg, file=str(file), line=line_of(data, loc), field=field_path or None))
    return out


# pydantic's tagged-union step in an error's loc ("row_count"), which the YAML does not have
CHECK_UNION_TAGS: frozenset[str] = frozenset(CHECK_KINDS)


def _load_config_file(path: Path) -> tuple[ProjectConfig, SourceMap]:
    source = load_source(path)
    data = source.root
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", file=str(path), line=1)
    expand_env(source, allowed=path_matcher(ENV_FIELDS), where=ENV_FIELDS_TEXT)
    try:
        return ProjectConfig.model_validate(data), source
    except ValidationError as exc:
        raise validation_errors(exc, data, path)[0] from None


def load_spec(path: Path) -> TableSpec:
    """One table spec. Nothing in it is expanded from the environment (${…} in its SQL is an error)."""
    source = load_source(path)
    data = source.root
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", file=str(path), line=1)
    try:
        spec = TableSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_errors(exc, data, path)[0] from None
    spec._file = path
    spec._source_map = source
    if path.stem != spec.table:
        raise ConfigError(
            f"table {spec.table!r} does not match the file name {path.name!r}",
            file=str(path),
            line=source.line(["table"]),
            field="table",
        )
    return spec


def load_project(config: str | Path | None = None, *, collect: list[ConfigError] | None = None) -> Project:
    """Load config and every spec. With `collect`, spec errors are appended to it instead of raised."""
    path = find_config(config)
    cfg, cfg_source = _load_config_file(path)
    project = Project(config_path=path.resolve(), config=cfg, config_source=cfg_source)
    tables_dir = project.tables_dir
    if not tables_dir.is_dir():
        err = ConfigError(f"tables_dir {cfg.tables_dir!r} is not a folder", file=str(path), field="tables_dir")
        if collect is None:
            raise err
        collect.append(err)
        return project
    gold_owners: dict[str, TableSpec] = {}
    for spec_path in sorted([*tables_dir.glob("*.yaml"), *tables_dir.glob("*.yml")]):
        try:
            spec = load_spec(spec_path)
        except ConfigError as exc:
            if collect is None:
                raise
            collect.append(exc)
            continue
        if spec.table in project.specs:
            err = ConfigError(
                f"table {spec.table!r} is also defined in {project.spec_files[spec.table].name}",
                file=str(spec_path),
                field="table",
            )
            if collect is None:
                raise err
            collect.append(err)
            continue
        clash = _gold_clash(spec, gold_owners)
        if clash is not None:
            if collect is None:
                raise clash
            collect.append(clash)
            continue
        project.specs[spec.table] = spec
        project.spec_files[spec.table] = spec_path
        gold_owners.update(dict.fromkeys(spec.gold, spec))
    return project


def _gold_clash(spec: TableSpec, owners: dict[str, TableSpec]) -> ConfigError | None:
    """Two specs defining one gold table: one query would silently never run, so it is a spec error."""
    for name in spec.gold:
        other = owners.get(name)
        if other is None:
            continue
        where = _where(other, ["gold", name])
        return ConfigError(
            f"gold table {name!r} is also defined in {where}: each gold table has one spec",
            file=str(spec.file),
            line=spec.source_map.line(["gold", name]) if spec.source_map else None,
            field=f"gold.{name}",
        )
    return None


def _where(spec: TableSpec, path: list) -> str:
    line = spec.source_map.line(path) if spec.source_map else None
    return f"{spec.file}:{line}" if line else str(spec.file)
