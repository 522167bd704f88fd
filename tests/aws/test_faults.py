"""Transient AWS faults are survived: each one injected at the moto server (faults.py) while lh360 talks to it.

Athena, Glue and S3 calls retry HTTP 500/503 (botocore `standard` retries); a poll that keeps failing
re-reads the query's state and stops the query if it still runs; throttling from a full query queue gets a
budget of minutes. (And the Athena double itself runs in UTC, as Athena does.)
"""

from __future__ import annotations

import athena_double
import pytest
from awstest import create_buckets, load, make_project, put
from faults import FAULTS

DOUBLE = athena_double.DOUBLE


@pytest.fixture
def target(aws_env, tmp_path):
    create_buckets()
    _, target = load(make_project(tmp_path))
    return target


def runner_for(target, **options):
    from lh360.engines.athena.query import AthenaRunner

    return AthenaRunner(target, poll_interval=0.05, **options)


def test_athena_start_and_poll_survive_server_errors(target):
    FAULTS.inject("athena:StartQueryExecution", times=2)
    FAULTS.inject("athena:GetQueryExecution", times=2, status=503, code="ServiceUnavailableException")
    runner = runner_for(target)
    try:
        result = runner.query("SELECT 41 + 1 AS answer")
    finally:
        runner.close()
    assert result.rows == [(42,)]
    assert FAULTS.injected.count("athena:StartQueryExecution") == 2
    assert FAULTS.injected.count("athena:GetQueryExecution") == 2
    assert len(DOUBLE.executions) == 1  # the retried start ran the query once


def test_a_poll_that_keeps_failing_stops_the_query(target):
    from lh360.engines.athena.query import API_ATTEMPTS
    from lh360.errors import EngineError

    DOUBLE.hang(match="lost_query")  # the query runs on; its first poll fails on every attempt
    FAULTS.inject("athena:GetQueryExecution", times=API_ATTEMPTS)
    runner = runner_for(target)
    try:
        with pytest.raises(EngineError, match="lost contact with Athena query .* was RUNNING and was stopped"):
            runner.query("SELECT 1 AS lost_query")
    finally:
        runner.close()
    [outcome] = [o for o in DOUBLE.queries if "lost_query" in o.query]
    assert outcome.state == "CANCELLED"  # StopQueryExecution was sent: the query no longer bills


def test_throttling_from_a_full_queue_gets_minutes():
    from lh360.engines.athena.query import THROTTLE_BUDGET_S, AthenaRunner, throttle_attempts

    runner = AthenaRunner.__dataclass_fields__
    multiplier, max_delay = runner["retry_multiplier"].default, runner["retry_max_delay"].default
    attempts = throttle_attempts(runner["throttle_budget_s"].default, multiplier, max_delay)
    waits = [min(multiplier * 2**n, max_delay) for n in range(attempts - 1)]
    assert 120 <= sum(waits) <= THROTTLE_BUDGET_S  # minutes of backoff, not the ~16 s it was
    assert throttle_attempts(10, 1, 60) == 4  # 1 + 2 + 4 = 7 s of waits fit in 10 s, one more would not


def test_throttled_starts_are_waited_out(target):
    DOUBLE.throttle(6, code="TooManyRequestsException")  # more than botocore's own attempts
    runner = runner_for(target, retry_multiplier=0.05, retry_max_delay=0.2, throttle_budget_s=5)
    try:
        assert runner.query("SELECT 1 AS one").rows == [(1,)]
    finally:
        runner.close()
    assert len(DOUBLE.throttled) == 6


def test_glue_calls_survive_server_errors(target):
    import boto3

    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": "lh360_silver"})
    glue.create_table(DatabaseName="lh360_silver", TableInput={"Name": "clientes"})
    FAULTS.inject("glue:GetTable", times=2)
    runner = runner_for(target)
    assert runner.exists("silver", "clientes")
    assert FAULTS.injected == ["glue:GetTable"] * 2


def test_s3_listing_and_reads_survive_server_errors(s3, tmp_path):
    from lh360.storage import store_for

    put(s3, "raw/eventos/a.json", '{"id": 1}\n')
    FAULTS.inject("s3:ListObjectsV2", times=2, status=503)
    FAULTS.inject("s3:GetObject", times=2)
    store = store_for("s3://landing/raw")
    assert [f.rel for f in store.list("s3://landing/raw/eventos")] == ["a.json"]
    assert store.read_bytes("s3://landing/raw/eventos/a.json") == b'{"id": 1}\n'
    assert FAULTS.injected.count("s3:ListObjectsV2") == FAULTS.injected.count("s3:GetObject") == 2


def test_delta_reads_survive_s3_server_errors(s3, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from lh360.delta import open_table
    from lh360.storage import delta_storage_options

    uri = "s3://lake/lh/silver/t"
    write_deltalake(uri, pa.table({"id": [1, 2]}), storage_options=delta_storage_options(uri))
    FAULTS.inject("s3:GetObject", times=2, status=503)
    dt = open_table(uri)
    assert dt is not None and dt.version() == 0
    assert FAULTS.injected.count("s3:GetObject") == 2  # delta-rs (object_store) retried them


def test_the_athena_double_runs_in_utc(target, monkeypatch):
    """Athena's session zone is UTC whatever the machine's; the double's DuckDB is told so (DuckDB would take
    the process's zone)."""
    import time

    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    runner = runner_for(target)
    try:
        result = runner.query("SELECT CAST(TIMESTAMP '2025-01-02 01:30:00 UTC' AS DATE) AS d")
    finally:
        runner.close()
        monkeypatch.undo()
        time.tzset()
    assert str(result.rows[0][0]) == "2025-01-02"  # 2025-01-01 in São Paulo
