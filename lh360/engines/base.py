"""The one seam between orchestration and where a step runs: the `Engine` protocol and the typed results
every engine returns. Nothing here imports an engine; engines import this module (and lower ones).

A query engine (`QueryRunner`: DuckDB, Athena, a Databricks SQL warehouse) is all a validator needs: how
a relation is named in its engine, its sqlglot dialect, and a way to run one statement and get rows back
with the engine's query id and bytes scanned.

The results are the same dataclasses for every engine: the run ledger, `--json` and the reports read their
fields. What only one engine knows (a Databricks run's id and page) travels in `run` (a `RemoteRun`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lh360.config import Project, ResolvedTarget
    from lh360.erasure import Journal, Subject
    from lh360.spec import TableSpec

# progress(event, **fields): "start" (table, files, bytes, batches) and "batch" (table, batch) of an ingest
Progress = Callable[..., None]


@dataclass(frozen=True)
class EngineOptions:
    """What one command asks of the engine beyond the target's settings (the CLI's --timeout, --detach,
    --run-id). An engine that cannot honour an option refuses it with a UsageError when it is built."""

    timeout: float | None = None  # seconds; None: the target's own setting
    detach: bool = False
    run_id: str | None = None
    new_checkpoint: str | None = None  # start a new checkpoint generation: "" = a name minted now, else this name

    def given(self) -> list[str]:
        """The options set, as their command-line names (for an engine's refusal)."""
        names = (
            ("--timeout", self.timeout),
            ("--detach", self.detach),
            ("--run-id", self.run_id),
            ("--new-checkpoint", self.new_checkpoint is not None),
        )
        return [name for name, value in names if value]


@dataclass
class RemoteRun:
    """A step that ran somewhere else (a Databricks one-time run, a SQL warehouse statement)."""

    run_id: int | None = None
    run_page_url: str | None = None
    idempotency_token: str | None = None
    logical_id: str | None = None
    state: str | None = None  # life cycle state
    result_state: str | None = None
    attached: bool = False  # an earlier invocation had started this run; this one waited for it
    detached: bool = False  # submitted and not waited for (--detach)
    job: dict[str, Any] = field(default_factory=dict)  # the job's own summary (counters it reported)
    statements: list[str] = field(default_factory=list)  # SQL statement ids


@dataclass
class IngestBatch:
    """One batch of landing files, committed to bronze in one commit."""

    batch_id: int
    files: int = 0
    bytes: int = 0
    rows: int = 0
    rescued: int = 0
    malformed: int = 0
    new_columns: list[str] = field(default_factory=list)
    version: int | None = None
    seconds: float = 0.0
    fast_path: bool = True  # local engine: the batch was read by the one-parse query


@dataclass
class IngestResult:
    """landing → bronze for one table."""

    table: str
    engine: str
    files: int = 0
    bytes: int = 0
    rows: int = 0
    rescued: int = 0
    malformed: int = 0
    new_columns: list[str] = field(default_factory=list)
    bronze_version: int | None = None
    pending_files: int = 0
    batches: list[IngestBatch] = field(default_factory=list)
    schema: dict[str, str] = field(default_factory=dict)
    # landing files the ingest left aside, each {"file": rel, ...why}: an engine reports what it can see
    settling: list[dict[str, Any]] = field(default_factory=list)  # written too recently: the next run takes them
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # unreadable as a whole: quarantined by this run
    still_quarantined: list[dict[str, Any]] = field(default_factory=list)  # quarantined before, unchanged: skipped
    rewritten: list[dict[str, Any]] = field(default_factory=list)  # ingested, then rewritten: not ingested again
    symlinks: list[dict[str, Any]] = field(default_factory=list)  # not followed
    future_mtime: list[dict[str, Any]] = field(default_factory=list)  # modification time ahead of the clock
    vanished: list[str] = field(default_factory=list)  # deleted between listing and reading
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "ingest"

    @property
    def relation(self) -> str:
        return f"bronze.{self.table}"

    def add(self, batch: IngestBatch) -> None:
        """Count a committed batch in the totals."""
        self.batches.append(batch)
        self.files += batch.files
        self.bytes += batch.bytes
        self.rows += batch.rows
        self.rescued += batch.rescued
        self.malformed += batch.malformed
        self.new_columns += batch.new_columns

    def as_dict(self) -> dict[str, Any]:
        return _as_dict(self, exclude=("schema",))


@dataclass
class RefineResult:
    """bronze → silver for one table."""

    table: str
    engine: str
    noop: bool = False
    bronze_from: int | None = None  # silver's watermark before the run (a bronze version); None: never read
    bronze_to: int | None = None
    rows_in: int = 0
    kept: int = 0
    dropped: int = 0
    quarantined: int = 0
    warned: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)
    rows_out: int = 0  # rows written to silver (inserted + updated, or SCD2 versions appended)
    inserted: int = 0
    updated: int = 0
    closed: int = 0
    silver_version: int | None = None
    quarantine_version: int | None = None
    quarantine_replayed: bool = False  # the quarantine append of this run had already been committed
    refine_run: int | None = None  # the number of this refine of the table (its commits' app transaction version)
    full_refresh: bool = False  # silver was rebuilt from all of bronze
    spec_hash: str | None = None  # the hash of the spec silver is built with after this run (None: not recorded)
    full_refresh_due: bool = False  # silver was built with another version of the silver spec
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "refine"

    @property
    def relation(self) -> str:
        return f"silver.{self.table}"

    def as_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass
class AggregateResult:
    """silver/gold → one gold relation, replaced in one commit."""

    relation: str  # gold.<name>
    table: str  # the spec that owns it
    engine: str
    rows_out: int = 0
    version: int | None = None
    sources: dict[str, int] = field(default_factory=dict)  # relation → Delta version read
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "aggregate"

    def as_dict(self) -> dict[str, Any]:
        return _as_dict(self)


MISSING_TABLE = "the table does not exist"  # why every task of a table that does not exist was skipped


@dataclass(frozen=True)
class MaintenanceWork:
    """What to do to one lake table now: each task that is due, with its settings (lh360.maintenance)."""

    compact: bool = False
    target_size: int = 128 * 1024**2  # bytes: small files are bin-packed toward this size
    checkpoint: bool = False
    log_cleanup: bool = False
    log_retain: float = 30 * 86400.0  # seconds: commit files younger than this stay
    vacuum: bool = False
    vacuum_retain: float = 7 * 86400.0  # seconds: data files a version within this window needs stay
    vacuum_full: bool = True  # also files no commit references (a killed writer's), older than the retention

    def tasks(self) -> list[str]:
        return [t for t in ("compact", "checkpoint", "log_cleanup", "vacuum") if getattr(self, t)]


@dataclass
class MaintainResult:
    """Maintenance of one lake table (bronze.x, silver.x, quarantine.x, gold.y, lh360.runs, lh360.checks)."""

    relation: str
    table: str  # the spec that owns it ("*" for the ledgers)
    engine: str
    done: list[str] = field(default_factory=list)  # tasks performed
    skipped: dict[str, str] = field(default_factory=dict)  # task → why it was not performed
    version_before: int | None = None
    version_after: int | None = None
    files_before: int | None = None  # the table's active data files
    files_after: int | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    compacted_files: int = 0  # small files rewritten …
    compacted_into: int = 0  # … into this many
    checkpoint_version: int | None = None
    logs_removed: int = 0  # log files (commits, old checkpoints) deleted
    vacuumed_files: int = 0  # data files deleted
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "maintain"

    def as_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass
class ReplayResult:
    """`quarantine replay`: quarantined rows re-evaluated against today's rules, those that pass merged."""

    table: str
    engine: str
    replay_run: int | None = None  # the number of this replay (its commits' app transaction version)
    resumed: bool = False  # finished a replay an interrupted run had marked in quarantine, not yet merged
    evaluated: int = 0  # quarantined rows not replayed before, evaluated again
    passed: int = 0  # …that pass every rule now: merged into silver by the sequence rules
    dropped: int = 0  # …that fail a `drop` rule now: leave quarantine, reach no table
    still_quarantined: int = 0  # …that still fail a quarantine rule, are malformed or have a NULL key
    inserted: int = 0
    updated: int = 0  # SCD2: versions appended over a current row
    stale: int = 0  # passed, but silver already holds the key with a newer (or the same) sequence
    quarantine_version: int | None = None
    silver_version: int | None = None
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "replay"

    @property
    def relation(self) -> str:
        return f"silver.{self.table}"

    def as_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass
class ForgetResult:
    """An erasure (`lh360 forget`) of one subject from one table: what each layer held of it. `request` is
    an HMAC of the key (lh360.erasure.Subject): the key's values are never in a result."""

    table: str
    engine: str
    request: str = ""
    key_columns: list[str] = field(default_factory=list)
    # relation (landing.t, bronze.t, silver.t, quarantine.t, lh360.checks) → {"rows": n, "files": n}
    layers: dict[str, dict[str, int]] = field(default_factory=dict)
    gold: list[str] = field(default_factory=list)  # gold relations recomputed without the subject
    noncurrent_versions: int = 0  # S3 object versions deleted (a versioned landing bucket or lake)
    vacuumed: bool = False  # old files, log entries and checkpoints purged (--vacuum)
    purged: dict[str, dict[str, int]] = field(default_factory=dict)  # relation → {files, log_entries}
    resumed: bool = False  # an interrupted erasure of the same key was finished
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run: RemoteRun | None = None

    step = "forget"

    @property
    def relation(self) -> str:
        return f"*.{self.table}"

    @property
    def rows(self) -> int:
        return sum(v.get("rows", 0) for v in self.layers.values())

    @property
    def matched(self) -> bool:
        return self.rows > 0

    def add(self, relation: str, rows: int, files: int) -> None:
        before = self.layers.get(relation, {"rows": 0, "files": 0})
        self.layers[relation] = {"rows": before["rows"] + rows, "files": before["files"] + files}

    def as_dict(self) -> dict[str, Any]:
        return {**_as_dict(self), "rows": self.rows, "matched": self.matched}


StepResult = IngestResult | RefineResult | AggregateResult | ReplayResult


def _as_dict(result: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result's fields (and step, relation) for --json; a remote run's fields sit at the top level."""
    d = {"step": result.step, "relation": result.relation}
    d.update((k, v) for k, v in asdict(result).items() if k not in exclude and k != "run")
    if result.run is not None:
        d.update(asdict(result.run))
    return d


@dataclass
class IngestState:
    """What the engine has already taken from a table's landing zone into bronze."""

    committed: int  # the last committed ingest batch id (a monotonic marker: -1 before the first)
    files: set[str]  # landing paths relative to the table's prefix
    # (size, mtime) of ingested files when they were ingested, where the engine recorded it: a file rewritten
    # under an ingested name is reported, never silently ignored
    meta: dict[str, tuple[int, float]] = field(default_factory=dict)
    quarantined: dict[str, dict[str, Any]] = field(default_factory=dict)  # rel → {size, mtime, error, at}
    warnings: list[str] = field(default_factory=list)  # e.g. the record of early files is incomplete


@dataclass(frozen=True)
class SpecDrift:
    """Whether silver was built with the table's silver spec as it is now (`promote --full-refresh` due)."""

    table: str
    built_with: str | None  # the hash of the spec silver's rows were built with (None: not recorded)
    current: str  # the hash of the spec now

    @property
    def due(self) -> bool:
        return self.built_with is not None and self.built_with != self.current

    def advice(self) -> str:
        return (
            f"silver.{self.table} was built with another version of its silver spec (columns, expectations, "
            f"keys, SCD or partitioning changed): rebuild it with lh360 promote {self.table} --to silver "
            "--full-refresh"
        )


@dataclass(frozen=True)
class PlannedStep:
    """One step of a plan, before an engine explains it: what runs, for which spec, writing what."""

    kind: str  # ingest | refine | aggregate | validate
    table: str  # the spec that owns the step
    relation: str  # what it writes (or checks): bronze.x, silver.x, gold.y


@dataclass
class Explanation:
    """What an engine would do for a step: details for people and --json, and the SQL it would run."""

    detail: dict[str, Any] = field(default_factory=dict)
    sql: str | None = None


# ---- query engines: where checks and `lh360 sql` run ------------------------------------------------


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    query_id: str | None = None
    bytes_scanned: int | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class QueryRunner(Protocol):
    dialect: str  # a key of lh360.sql.DIALECTS: duckdb | athena | databricks

    def table_name(self, layer: str, name: str) -> str:
        """The engine's name for <layer>.<name>, ready to put in SQL (quoted where needed)."""
        ...

    def table_version(self, layer: str, name: str) -> int | None:
        """The Delta version the next query will read, for the quality ledger (None if unknown)."""
        ...

    def query(self, sql: str, *, reuse_results: bool = False) -> QueryResult: ...

    def close(self) -> None: ...


# ---- step engines -----------------------------------------------------------------------------------


class Engine(Protocol):
    """Runs the steps of one target. Each call is one step on one table; it commits or raises an LH360Error."""

    name: str
    target: ResolvedTarget

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None) -> IngestResult:
        """landing → bronze: every pending landing file, exactly once."""
        ...

    def refine(self, spec: TableSpec, *, full_refresh: bool = False) -> RefineResult:
        """bronze → silver: the bronze rows committed since silver's watermark, merged (one commit);
        `full_refresh`: silver (and quarantine) rebuilt from all of bronze, each replaced in one commit.
        An engine that cannot rebuild refuses it (UsageError)."""
        ...

    def aggregate(self, project: Project, relation: str) -> AggregateResult:
        """Recompute gold.<name> from its SQL and replace it in one atomic commit."""
        ...

    def ingested(self, spec: TableSpec) -> IngestState:
        """The landing files already in bronze, as this engine records them."""
        ...

    def explain(self, project: Project, step: PlannedStep, *, inspect: bool = True) -> Explanation:
        """What the step would do and its SQL, writing nothing (`inspect`: may read the lake)."""
        ...

    def replay_quarantine(self, spec: TableSpec) -> ReplayResult:
        """Re-evaluate the quarantined rows not replayed yet against the spec's rules; merge those that pass
        into silver by the sequence rules and mark them replayed in quarantine (kept), exactly once across
        crashes. An engine that cannot refuses it (UsageError)."""
        ...

    def spec_drift(self, spec: TableSpec) -> SpecDrift | None:
        """Whether silver was built with the spec as it is now; None when the engine does not record it or
        there is no silver yet."""
        ...

    def maintain(self, relation: str, work: MaintenanceWork) -> MaintainResult:
        """Compact, checkpoint, clean the log of and vacuum one lake table (`layer.name`: bronze, silver,
        quarantine or gold), as `work` says; the caller holds the table's lock. Tasks the engine leaves
        to its platform are reported in `skipped`; a table that does not exist is all skipped."""
        ...

    def forget(self, spec: TableSpec, subject: Subject, journal: Journal) -> ForgetResult:
        """Erase the subject's rows from the table's landing files, bronze, silver and quarantine (lh360
        forget; the context recomputes gold, scrubs the ledgers and purges). Idempotent; `journal` carries
        what an interrupted run did. An engine that cannot erase raises a UsageError."""
        ...

    def purge(self, relations: list[str]) -> dict[str, dict[str, int]]:
        """Delete what the tables (layer.name) no longer hold but still remember: old files, log entries
        and checkpoints (after an erasure)."""
        ...
