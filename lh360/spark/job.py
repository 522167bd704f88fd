"""lh360's Spark job: one step (ingest | refine | aggregate | replay) of one table, on Databricks.

Usage (a ``spark_python_task``; the ops box uploads job.py, contract.py, runtime.py and transforms.py to one
folder, `lh360 deploy`)::

    python job.py --step refine --payload '{"step": "refine", "table": "clientes", ...}'
    python job.py --step refine --payload-file s3://lake/_lh360/payloads/<token>.json
    python job.py --step refine --payload-file p.json --explain   # options + SQL, no Spark

pyspark + stdlib only (no lh360 import). The payload and the summary are the contract (contract.py); the
Spark work is runtime.py.

Output: the last stdout line is one JSON object with ``"lh360_job": 1`` (see contract.parse_summary):
status, counters (rows_in, rows_out, dropped, quarantined, warned/failed per rule ...), error.
Exit codes: 0 ok, 1 an expectation with action ``fail`` failed, 2 bad payload/spec, 3 any other error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any

if not __package__ and "__file__" in globals():  # uploaded alone: the sibling files sit next to this one
    _here = os.path.dirname(os.path.abspath(__file__))
    if _here not in sys.path:
        sys.path.insert(0, _here)

if __package__:  # inside the lh360 package (the ops box, the tests)
    from lh360.spark import contract as C
    from lh360.spark import runtime as R
    from lh360.spark import transforms as T
else:  # uploaded: the files sit side by side and job.py put their folder on sys.path
    import contract as C  # type: ignore[no-redef]
    import runtime as R  # type: ignore[no-redef]
    import transforms as T  # type: ignore[no-redef]


# --------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="job.py",
        description="lh360 Spark job: run one step of one table (Auto Loader ingest, refine MERGE, gold aggregate, "
        "quarantine replay).",
        epilog="The last stdout line is a one-line JSON summary. Exit codes: 0 ok, 1 an expectation with action "
        "'fail' failed, 2 bad payload or spec, 3 any other error.",
    )
    p.add_argument("--step", required=True, choices=C.STEPS, help="the step to run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--payload", help="the payload as a JSON string")
    src.add_argument("--payload-file", help="a file holding the payload JSON")
    p.add_argument(
        "--explain", action="store_true", help="print the options and SQL the step would run, then exit (no Spark)"
    )
    return p


def main(argv: list[str] | None = None, spark=None) -> int:
    args = build_arg_parser().parse_args(argv)
    started = time.monotonic()
    summary: dict[str, Any] = {C.SUMMARY_KEY: C.SUMMARY_VERSION, "step": args.step, "table": None, "run_id": None}
    summary["started_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 - DBR runs Python 3.10
    code = C.EXIT_OK
    try:
        payload = R.load_payload(args, lambda: spark or R.get_spark({}))
        summary.update(table=payload["table"], run_id=payload["run_id"])
        if args.explain:
            print(json.dumps(C.plan(payload), indent=2, default=str), flush=True)
            return C.EXIT_OK
        spark = spark or R.get_spark(payload)
        summary.update(R.RUNNERS[payload["step"]](spark, payload))
        summary.update(status="succeeded", error=None, error_kind=None)
    except (C.PayloadError, T.SpecError) as e:
        code = C.EXIT_BAD_PAYLOAD
        summary.update(status="failed", error_kind="bad_payload", error=str(e))
    except Exception as e:  # noqa: BLE001 - the job's one error boundary
        if isinstance(e, T.ExpectationFailed) or C.is_marked(e, (T.ExpectationFailed.MARKER,)):
            code = C.EXIT_EXPECTATION_FAILED
            summary.update(status="failed", error_kind="expectation_failed", error=C.short_error(e))
        else:
            code = C.EXIT_ERROR
            summary.update(status="failed", error_kind="error", error=f"{type(e).__name__}: {C.short_error(e)}")
    summary["exit_code"] = code
    summary["seconds"] = round(time.monotonic() - started, 3)
    if code:
        print(f"lh360 {args.step} failed: {summary['error']}", file=sys.stderr, flush=True)
    print(json.dumps(summary, default=str, separators=(",", ":")), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
