"""The databricks-sdk's dataclasses as the contract of what lh360 sends to `jobs/runs/submit`.

The SDK's dataclasses are generated from the REST API's specification: a key they do not have, or an enum
value they do not list, is one the service refuses or silently ignores (and the SDK itself drops it on
the way: `SubmitTask.from_dict` forgets unknown keys, unknown enum values become None). lh360 posts its
body verbatim, so nothing is dropped on the way, and refuses such a body before sending it: exit 2,
naming the key (`tasks[0].new_cluster.data_security_mode: 'single_user' is not one of ...`).

The SDK is imported inside the functions (`import databricks.sdk` is slow; `lh360 --help` stays fast).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from functools import cache
from typing import Any

MIN_SDK = (0, 54)  # the first databricks-sdk whose compute.Environment knows environment_version
_EMPTY: tuple[Any, ...] = ({}, [], None, "")


@dataclass(frozen=True)
class Problem:
    parts: tuple[str | int, ...]  # ("tasks", 0, "new_cluster", "spark_conf", "spark.sql.shuffle.partitions")
    reason: str

    @property
    def path(self) -> str:
        """tasks[0].new_cluster.aws_attributes.ebs_volume_type"""
        out = ""
        for part in self.parts:
            out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
        return out

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def sdk_version() -> str:
    from databricks.sdk.version import __version__

    return __version__


def sdk_too_old() -> str | None:
    """Why the installed databricks-sdk cannot be used (None when it can)."""
    version = sdk_version()
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_SDK:
        need = ".".join(map(str, MIN_SDK))
        return (
            f"databricks-sdk {version} is installed; lh360 needs databricks-sdk>={need} (pip install -U databricks-sdk)"
        )
    return None


def submit_problems(body: dict[str, Any]) -> list[Problem]:
    """Every key or value of a `jobs/runs/submit` body that the SDK's contract does not have."""

    from databricks.sdk.service.jobs import JobsAPI

    params = {p for p in inspect.signature(JobsAPI.submit).parameters if p != "self"}
    hints = _hints(JobsAPI.submit)
    out: list[Problem] = []
    for key, value in body.items():
        if key not in params:
            out.append(Problem((key,), _unknown(key, params, "JobsAPI.submit")))
        else:
            out += _check(value, hints.get(key), (key,))
    return out


@cache
def _hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(obj)


def _unwrap(hint: Any) -> Any:
    """Optional[X] → X."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _check(value: Any, hint: Any, path: tuple) -> list[Problem]:
    hint = _unwrap(hint)
    if hint is None or hint is Any or value is None:
        return []
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):  # noqa: UP006 - what typing.get_origin may return
        if not isinstance(value, list):
            return [Problem(path, f"expected a list, got {type(value).__name__}")]
        (item,) = typing.get_args(hint) or (Any,)
        return [p for i, v in enumerate(value) for p in _check(v, item, (*path, i))]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            return [Problem(path, f"expected a mapping, got {type(value).__name__}")]
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return [p for k, v in value.items() for p in _check(v, item, (*path, k))]
    if isinstance(hint, type) and issubclass(hint, Enum):
        allowed = [e.value for e in hint]
        if value not in allowed:
            return [Problem(path, f"{value!r} is not one of {', '.join(map(repr, allowed))}")]
        return []
    if is_dataclass(hint):
        return _check_dataclass(value, hint, path)
    return _check_scalar(value, hint, path)


def _check_dataclass(value: Any, cls: Any, path: tuple) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem(path, f"expected a mapping ({cls.__name__}), got {type(value).__name__}")]
    known = {f.name for f in fields(cls)}
    hints = _hints(cls)
    out: list[Problem] = []
    for key, v in value.items():
        where = (*path, key)
        if key not in known:
            out.append(Problem(where, _unknown(key, known, cls.__name__)))
        else:
            out += _check(v, hints.get(key), where)
    if not out:  # the SDK's own round trip: whatever it would drop that the walk above did not explain
        kept = cls.from_dict(value).as_dict()
        for key, v in value.items():
            if key not in kept and v not in _EMPTY:
                out.append(Problem((*path, key), f"the SDK's {cls.__name__} drops {v!r}"))
    return out


def _check_scalar(value: Any, hint: Any, path: tuple) -> list[Problem]:
    expected = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}
    if hint not in expected:
        return []
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint) and not isinstance(value, bool)
    return [] if ok else [Problem(path, f"expected {expected[hint]}, got {value!r}")]


def _unknown(key: str, known: set[str], owner: str) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1) or sorted(k for k in known if k.startswith(key))[:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key (the Databricks API's {owner} has no such field{hint})"
