"""Run IAM authorizations through @cloud-copilot/iam-simulate (tests/iam/evaluate.mjs, Node) and report.

The Node packages are installed by `npm ci --prefix tests/iam` (scripts/test.sh does it); the tests fail, not
skip, without them, so the proof cannot silently disappear from a run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.iam.actions import Authz
from tests.iam.lh360_platform import Platform

IAM_DIR = Path(__file__).resolve().parent
INSTALL_HINT = "run `npm ci --prefix tests/iam` (scripts/test.sh does) with Node >= 20"


@dataclass
class Verdict:
    principal: str
    authz: Authz
    result: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied | Error
    errors: Any = None
    unknown_context_keys: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def describe(self) -> str:
        ctx = {k: v for k, v in self.authz.context.items() if k != "aws:SecureTransport"}
        extra = f" {self.errors}" if self.errors else ""
        return f"{self.result}: {self.principal} {self.authz.action} on {self.authz.resource} {ctx} <- {self.authz.why}{extra}"


def node_ready() -> None:
    if shutil.which("node") is None:
        raise AssertionError(f"node is not installed: {INSTALL_HINT}")
    if not (IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise AssertionError(f"tests/iam/node_modules is missing: {INSTALL_HINT}")


def _resource_policy(platform: Platform, authz: Authz) -> dict[str, Any] | None:
    if authz.action.startswith("s3:"):
        bucket = authz.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        return platform.bucket_policies.get(bucket)
    if authz.action.startswith("kms:"):
        return platform.key_policies.get(authz.resource)
    return None


def evaluate(platform: Platform, requests: list[tuple[str, Authz]]) -> list[Verdict]:
    """One verdict per distinct (principal, authorization); principals are Platform.principals names."""
    node_ready()
    unique: dict[tuple, tuple[str, Authz]] = {}
    for principal, authz in requests:
        unique.setdefault((principal, *authz.key()), (principal, authz))
    cases = []
    for i, (principal, authz) in enumerate(unique.values()):
        who = platform.principals[principal]
        cases.append(
            {
                "id": i,
                "principal": who.arn,
                "account": platform.account,
                "action": authz.action,
                "resource": authz.resource,
                "context": authz.context,
                "identityPolicies": [{"name": name, "policy": policy} for name, policy in who.policies],
                "resourcePolicy": _resource_policy(platform, authz),
            }
        )
    proc = subprocess.run(
        ["node", str(IAM_DIR / "evaluate.mjs")],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        cwd=IAM_DIR,
        timeout=300,
    )
    if proc.returncode != 0:
        raise AssertionError(f"evaluate.mjs failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = []
    pairs = list(unique.values())
    for row in json.loads(proc.stdout):
        principal, authz = pairs[row["id"]]
        out.append(
            Verdict(principal, authz, row["result"], row.get("errors"), tuple(row.get("unknownContextKeys") or ()))
        )
    return out


def problems(verdicts: list[Verdict]) -> list[str]:
    """What must not happen: a request denied, an evaluation error, or a context key the action ignores."""
    out = [v.describe() for v in verdicts if not v.allowed]
    out += [
        f"context keys {list(v.unknown_context_keys)} do not apply to {v.authz.action}"
        for v in verdicts
        if v.unknown_context_keys
    ]
    return out
