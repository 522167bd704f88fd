"""The Delta side of quarantine replay (runtime.DeltaTarget) under serverless rules, driven against a stand-in
for Delta and Unity Catalog that keeps silver and quarantine as DataFrames and answers the statements the job
sends: the mark columns added by name, quarantine overwritten by name (by path before the catalog has it) with
the app transaction, the MERGE taking only later versions, the replay recorded as silver's table property; no
Spark conf, no cache."""

from __future__ import annotations

import re

import pytest

from lh360.spark import contract, runtime
from tests.spark.test_replay_spark import DATA, LINEAGE, QUARANTINE, SILVER, current, marks, payload
from tests.spark.test_serverless import serverless  # noqa: F401 - the fixture

pytestmark = pytest.mark.spark

SILVER_NAME = "`c`.`silver`.`ev`"
QUARANTINE_NAME = "`c`.`silver`.`ev_quarantine`"


class Lake:
    """Delta and UC as the job meets them: tables by name or `delta.`path``, SQL statements, writes by path."""

    def __init__(self, spark, silver, quarantine):
        self.spark = spark
        self.tables = {SILVER_NAME: silver, QUARANTINE_NAME: quarantine}
        self.paths = {"s3://lake/quarantine/ev": QUARANTINE_NAME, "s3://lake/silver/ev": SILVER_NAME}
        self.props: dict[str, str] = {}
        self.statements: list[str] = []
        self.writes: list[dict] = []
        self.catalog = self
        self.unregistered: set[str] = set()  # tables whose location the catalog does not know yet

    # the Delta target's view of the session
    def table(self, ref):
        path = re.fullmatch(r"delta\.`(.*)`", ref)
        return self.tables[self.paths[path.group(1)] if path else ref]

    def tableExists(self, name):  # noqa: N802 - pyspark's spelling
        return name in self.tables and name not in self.unregistered

    @property
    def read(self):
        lake = self

        class Reader:
            def format(self, _):
                return self

            def load(self, path):
                return lake.tables[lake.paths[path]]

        return Reader()

    def sql(self, text):
        self.statements.append(text)
        if text.startswith("SHOW TBLPROPERTIES"):
            return self.spark.createDataFrame(list(self.props.items()) or [("x", "y")], "key string, value string")
        if " SET TBLPROPERTIES " in text:
            self.props.update(re.findall(r"'([^']+)' = '([^']*)'", text))
        elif " ADD COLUMNS " in text:
            ref = text.split(" ADD COLUMNS ")[0].removeprefix("ALTER TABLE ")
            cols = re.findall(r"`([^`]+)` ([a-z<>]+)", text.split(" ADD COLUMNS ")[1])
            name = self.paths.get(ref[7:-1], ref) if ref.startswith("delta.") else ref
            self.tables[name] = self.tables[name].selectExpr("*", *[f"CAST(NULL AS {t}) AS `{c}`" for c, t in cols])
        elif text.startswith("MERGE INTO"):
            return self._merge(text)
        elif text.startswith("DESCRIBE HISTORY"):
            return self.spark.createDataFrame([(len(self.statements),)], "version long")
        return self.spark.createDataFrame([], "x int")

    def _merge(self, text):
        """The rows of the MERGE's source applied as the replay's SCD1 MERGE would: by key, in place."""
        view = text.split("USING ")[1].split(" AS s")[0].strip("`")
        source = self.spark.table(view).localCheckpoint()
        keys = [r["id"] for r in source.collect()]
        held = {r["id"] for r in self.tables[SILVER_NAME].collect()}
        kept = self.tables[SILVER_NAME].where(~self.tables[SILVER_NAME]["id"].isin(keys))
        self.tables[SILVER_NAME] = kept.unionByName(source).localCheckpoint()
        updated = len([k for k in keys if k in held])
        return self.spark.createDataFrame(
            [(len(keys), updated, 0, len(keys) - updated)],
            "num_affected_rows long, num_updated_rows long, num_deleted_rows long, num_inserted_rows long",
        )


@pytest.fixture
def lake(spark, monkeypatch):
    """Writes by path or by name land in the lake's table, with their mode and options recorded."""
    from pyspark.sql.readwriter import DataFrameWriter

    built = Lake(
        spark,
        spark.createDataFrame(SILVER, DATA),
        spark.createDataFrame(QUARANTINE, f"{DATA}, {LINEAGE}"),
    )
    real_options, real_mode = DataFrameWriter.options, DataFrameWriter.mode

    def options(self, **opts):
        self._lh360_options = {**getattr(self, "_lh360_options", {}), **opts}
        return real_options(self, **opts)

    def mode(self, value):
        self._lh360_mode = value
        return real_mode(self, value)

    def save(self, path=None, *a, **k):
        built.writes.append({"to": path, "mode": self._lh360_mode, "options": dict(self._lh360_options)})
        built.tables[built.paths[path]] = self._df.localCheckpoint()

    class WriterV2:
        def __init__(self, df, name):
            self.df, self.name, self.opts = df, name, {}

        def options(self, **opts):
            self.opts.update(opts)
            return self

        def overwrite(self, condition):
            assert str(condition) == str(F.lit(True))  # every row
            built.writes.append({"to": self.name, "mode": "overwrite", "options": dict(self.opts)})
            built.tables[self.name] = self.df.localCheckpoint()

    def refuse(self, *a, **k):
        raise AssertionError("an append would not replace the marked rows")

    from pyspark.sql import functions as F

    monkeypatch.setattr(DataFrameWriter, "options", options)
    monkeypatch.setattr(DataFrameWriter, "mode", mode)
    monkeypatch.setattr(DataFrameWriter, "save", save)
    monkeypatch.setattr(DataFrameWriter, "saveAsTable", refuse)
    monkeypatch.setattr(type(spark.range(0)), "writeTo", lambda df, name: WriterV2(df, name))
    return built


def replay_payload():
    return contract.parse_payload({**payload(), "tables": {"quarantine": QUARANTINE_NAME}})


class Tables:
    """The frames of the lake, as the MemoryTarget helpers of test_replay_spark read them."""

    def __init__(self, lake):
        self.silver, self.quarantine = lake.tables[SILVER_NAME], lake.tables[QUARANTINE_NAME]


def test_delta_target_replays_under_serverless_rules(spark, serverless, lake):  # noqa: F811 - the fixture
    summary = runtime.run_replay(spark, replay_payload(), target_factory=lambda s, p: runtime.DeltaTarget(lake, p))
    assert serverless == []  # no session conf, no cache
    assert (summary["replay_run"], summary["passed"], summary["inserted"], summary["updated"]) == (0, 4, 1, 1)
    assert summary["silver_version"] is not None and summary["quarantine_version"] is not None

    alter = next(s for s in lake.statements if " ADD COLUMNS " in s)
    assert alter.startswith(f"ALTER TABLE {QUARANTINE_NAME} ADD COLUMNS (`_replayed_at` timestamp")
    (write,) = lake.writes
    assert write == {
        "to": QUARANTINE_NAME,
        "mode": "overwrite",
        "options": {"txnAppId": "lh360-replay-ev", "txnVersion": "0"},
    }
    (merge,) = [s for s in lake.statements if s.startswith("MERGE INTO")]
    assert merge.startswith("MERGE INTO `c`.`silver`.`ev` AS t") and "<=>" not in merge  # later versions only
    assert lake.statements[-3] == f"ALTER TABLE {SILVER_NAME} SET TBLPROPERTIES ('lh360.replay' = '0')"
    assert lake.props == {contract.REPLAY_PROPERTY: "0"}

    tables = Tables(lake)
    assert current(tables) == [(1, "ok", 1), (2, "ok", 3), (3, "bad", 1), (4, "bad", 5), (6, "ok", 4)]
    assert [m[3] for m in marks(tables)] == ["merged"] * 4 + [None, None]

    # the next replay reads replay 0 from silver's property and quarantine's marks: nothing left that passes
    lake.statements.clear()
    again = runtime.run_replay(spark, replay_payload(), target_factory=lambda s, p: runtime.DeltaTarget(lake, p))
    assert again["replay_run"] is None and len(lake.writes) == 1
    assert not [s for s in lake.statements if s.startswith(("MERGE", "ALTER"))]


def test_a_quarantine_the_catalog_does_not_know_yet_is_overwritten_by_path(spark, serverless, lake):  # noqa: F811
    lake.unregistered.add(QUARANTINE_NAME)
    summary = runtime.run_replay(spark, replay_payload(), target_factory=lambda s, p: runtime.DeltaTarget(lake, p))
    assert summary["replay_run"] == 0 and serverless == []
    assert next(s for s in lake.statements if " ADD COLUMNS " in s).startswith(
        "ALTER TABLE delta.`s3://lake/quarantine/ev` ADD COLUMNS"
    )
    (write,) = lake.writes
    assert write == {
        "to": "s3://lake/quarantine/ev",
        "mode": "overwrite",
        "options": {"txnAppId": "lh360-replay-ev", "txnVersion": "0"},
    }
    assert [m[3] for m in marks(Tables(lake))] == ["merged"] * 4 + [None, None]
