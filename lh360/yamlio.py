"""YAML loading that remembers where every value came from, so errors can name file, line and field.

Scalars follow YAML 1.2's core schema, not PyYAML's YAML 1.1: only true/false are booleans, so
`values: [NO, SE, ON]` stays three strings (1.1 reads False, 'SE', True), `2024-01-01` and `1:30` stay
text, `010` is ten. Anchors and aliases work, but a document whose aliases expand it by more than
MAX_ALIAS_VALUES values (a "billion laughs" bomb) or that refers to itself is refused before it is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from lh360.errors import ConfigError

# values aliases may add to a document beyond what is written (real configs add a few hundred)
MAX_ALIAS_VALUES = 100_000


class LineDict(dict):
    """A mapping that knows the source line of each key (1-based) and of itself."""

    lines: dict[Any, int]
    line: int


class LineList(list):
    lines: list[int]
    line: int


@dataclass(frozen=True)
class SourceMap:
    """Where a loaded document came from: its file and its LineDict/LineList tree, for error lines."""

    file: str
    root: Any

    def line(self, path: tuple | list) -> int | None:
        return line_of(self.root, path)


class _Resolver(BaseResolver):
    """YAML 1.2 core schema: null, true/false, decimal/0o/0x integers, floats; everything else is a string."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Resolver.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


class _Loader(Reader, Scanner, Parser, Composer, SafeConstructor, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        _Resolver.__init__(self)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    # merged pairs (`<<: *base`) come first, then the mapping's own, which override them; duplicate own
    # keys were refused before construction (_check_graph)
    loader.flatten_mapping(node)
    result = LineDict()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (dict, list)):
            raise ConfigError(
                "a key must be a plain value", file=getattr(loader, "_lh360_file", None), line=_line(key_node)
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.lines = [child.start_mark.line + 1 for child in node.value]
    result.line = node.start_mark.line + 1
    return result


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    return int(text, 0) if text[:2] in ("0o", "0x") else int(text)  # YAML 1.2: 010 is ten, not eight


_Loader.add_constructor(BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_graph(loader: _Loader, root: Node, file: str) -> None:
    """Before anything is built: refuse duplicate keys, aliases that expand the document by more than
    MAX_ALIAS_VALUES values, and a value that contains itself.

    Aliases make the composed document a graph that shares nodes; everything after loading (validation,
    error lines) walks it as a tree. Sizes are counted once per node (iteratively: no recursion limit).
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    first_big: Node | None = None  # the innermost value that alone expands past the limit: the error's line
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if first_big is None and size[key] > MAX_ALIAS_VALUES:
                first_big = node
            continue
        if key in size:
            continue
        if isinstance(node, MappingNode):
            _check_keys(loader, node, file)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError("an alias refers to the value that contains it", file=file, line=_line(child))
            if id(child) not in size:
                stack.append((child, False))
    added = size[id(root)] - len(size)
    if added > MAX_ALIAS_VALUES:
        raise ConfigError(
            f"aliases expand this document by {added:,} values (the limit is {MAX_ALIAS_VALUES:,}): "
            "write the values out or use fewer aliases",
            file=file,
            line=_line(first_big or root),
        )


def _check_keys(loader: _Loader, node: MappingNode, file: str) -> None:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r}", file=file, line=_line(key_node))
        seen.add(key)


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def load_yaml(path: Path) -> Any:
    """Parse a YAML file into LineDict/LineList values; syntax errors become ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    loader = _Loader(text)
    loader._lh360_file = str(path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(loader, node, str(path))
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=str(path)) from None
    finally:
        loader.dispose()


def load_source(path: Path) -> SourceMap:
    """load_yaml, with the file name kept alongside (what later errors need to find a line)."""
    return SourceMap(file=str(path), root=load_yaml(path))


# ---- ${VAR} -----------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# names of credentials: never expanded, so a config value (printed by plan, errors, the ledger) cannot carry one
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|(?:^|_)KEY(?:$|_)|APIKEY")


def expand_env(
    source: SourceMap,
    *,
    allowed: Callable[[tuple], bool],
    where: str = "",
    env: dict[str, str] | os._Environ | None = None,
) -> Any:
    """Expand ${VAR} and ${VAR:-default} in the strings at paths `allowed` accepts; anywhere else a `${`
    is an error naming `where` (the fields that expand). Unset variables without a default, and names that
    look like credentials, are errors too."""
    environ = os.environ if env is None else env
    # iterative: after aliases the document may share values; each (container, key) is visited once per path
    stack: list[tuple[Any, tuple]] = [(source.root, ())]
    while stack:
        value, path = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in list(items):
            item_path = (*path, key)
            if isinstance(item, (dict, list)):
                stack.append((item, item_path))
            elif isinstance(item, str) and "${" in item:
                value[key] = _expand(item, item_path, source, allowed, where, environ)
    return source.root


def _expand(text: str, path: tuple, source: SourceMap, allowed, where: str, env) -> str:
    def error(reason: str) -> ConfigError:
        return ConfigError(reason, file=source.file, line=source.line(path), field=dotted(path))

    if not allowed(path):
        raise error(f"${{…}} is not expanded here; it works only in {where}" if where else "${…} is not expanded")

    def repl(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if _SECRET_NAME.search(name.upper()):
            raise error(
                f"refuses to expand {name}: it looks like a credential, and config values are printed "
                "(credentials come from the Databricks SDK's auth and the AWS credential chain)"
            )
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise error(f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")

    return _VAR.sub(repl, text)


def path_matcher(patterns: tuple[tuple[str, ...], ...]) -> Callable[[tuple], bool]:
    """A test for paths like ("targets", "prod", "lake"): `*` matches one key, a final `**` any rest."""

    def matches(path: tuple) -> bool:
        for pattern in patterns:
            if pattern[-1] == "**":
                head = pattern[:-1]
                if len(path) > len(head) and all(p in ("*", k) for p, k in zip(head, path, strict=False)):
                    return True
            elif len(pattern) == len(path) and all(p in ("*", k) for p, k in zip(pattern, path, strict=True)):
                return True
        return False

    return matches


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
