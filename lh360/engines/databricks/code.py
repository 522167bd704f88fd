"""The job code lh360 uploads to the workspace (`lh360 deploy`) and checks before every run: the files of
lh360/spark/, their manifest, and reading/writing workspace files."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

from lh360 import __version__

JOB_FILE = "lh360_job.py"  # lh360/spark/job.py, uploaded under this name
CODE_FILES = {  # uploaded name → lh360/spark/<file>: the job and the modules it imports, side by side
    JOB_FILE: "job.py",
    "contract.py": "contract.py",
    "runtime.py": "runtime.py",
    "transforms.py": "transforms.py",
}
MANIFEST_FILE = "lh360_code.json"  # {"sha256": …} of the uploaded code, written last by deploy


@dataclass(frozen=True)
class CodeBundle:
    files: dict[str, bytes]  # uploaded name → content

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    def manifest(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "lh360_version": __version__,
            "files": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(self.files.items())},
        }


def code_bundle() -> CodeBundle:
    pkg = resources.files("lh360.spark")
    return CodeBundle({name: pkg.joinpath(src).read_bytes() for name, src in CODE_FILES.items()})


def read_workspace_json(w: Any, path: str) -> dict[str, Any] | None:
    from databricks.sdk.service.workspace import ExportFormat

    resp = w.workspace.export(path, format=ExportFormat.AUTO)
    try:
        return json.loads(base64.b64decode(resp.content or b"").decode() or "null")
    except ValueError:
        return None


def write_workspace_file(w: Any, path: str, content: bytes) -> None:
    """A workspace *file* (format RAW: never turned into a notebook), replacing any previous one."""
    from databricks.sdk.service.workspace import ImportFormat

    w.workspace.import_(path, content=base64.b64encode(content).decode(), format=ImportFormat.RAW, overwrite=True)
