"""YAML loading that remembers where every value came from, so errors can name file, line and field."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from lh360.errors import ConfigError


class LineDict(dict):
    """A mapping that knows the source line of each key (1-based) and of itself."""

    lines: dict[Any, int]
    line: int


class LineList(list):
    lines: list[int]
    line: int


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ConfigError(
                f"duplicate key {key!r}", file=getattr(loader, "_lh360_file", None), line=key_node.start_mark.line + 1
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.lines = [child.start_mark.line + 1 for child in node.value]
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_yaml(path: Path) -> Any:
    """Parse a YAML file into LineDict/LineList values; syntax errors become ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    loader = _Loader(text)
    loader._lh360_file = str(path)  # type: ignore[attr-defined]
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from None
    finally:
        loader.dispose()


def expand_env(value: Any, *, file: str, env: dict[str, str] | None = None, path: tuple = ()) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; an unset variable without default is an error."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        for key in list(value):
            value[key] = expand_env(value[key], file=file, env=env, path=(*path, key))
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = expand_env(item, file=file, env=env, path=(*path, i))
        return value
    if isinstance(value, str) and "${" in value:

        def repl(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
                file=file,
                line=line_of(_ROOTS.get(file), path),
                field=dotted(path),
            )

        return _VAR.sub(repl, value)
    return value


_ROOTS: dict[str, Any] = {}


def remember_root(file: str, data: Any) -> None:
    _ROOTS[file] = data


def line_of(root: Any, path: tuple | list) -> int | None:
    """The line of the deepest element of `path` that the document has (pydantic loc or our own path)."""
    node, line = root, getattr(root, "line", None)
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        elif isinstance(node, LineDict) and isinstance(part, str) and len(node) == 1:
            # pydantic's tagged-union step ("row_count" inside a one-key check mapping) is already consumed
            continue
        else:
            break
    return line


def dotted(path: tuple | list) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
