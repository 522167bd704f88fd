"""A small Terraform evaluator over python-hcl2's parse tree: enough to render what terraform/ would render for
IAM policies and the lh360_* outputs, offline (no providers, no `terraform plan`).

A `Module` is one module instance: its variables come from the caller's arguments (evaluated in the caller's
scope, as Terraform wires them) or from their defaults; locals, outputs, child modules, resources and data
sources are evaluated lazily, on first reference, so only what a test asks for must be supported.

What is modelled beyond plain HCL:

* data sources: `aws_caller_identity` (ACCOUNT), `aws_partition` ("aws"), `aws_region` (the root's region),
  `aws_iam_policy_document` (its `statement` blocks rendered to the JSON the AWS provider produces);
* resources: their own arguments (with `each.key`/`each.value` under `for_each`), and the computed attributes
  lh360's wiring reads (`arn`, `id`, `name`, `key_id`), in each type's documented ARN format;
* anything else computed by a provider is an `Unknown` value, which renders as `<unknown:...>` so a test can
  refuse a policy that depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree

ACCOUNT = "123456789012"
PARTITION = "aws"


class Unsupported(Exception):
    """An HCL construct or reference this evaluator does not model."""


@dataclass(frozen=True)
class Unknown:
    """A value only known after apply (computed by a provider)."""

    what: str

    def __str__(self) -> str:
        return f"<unknown:{self.what}>"


def parse_file(path: Path) -> Tree:
    return hcl2.parses_to_tree(path.read_text())


# ---------------------------------------------------------------------------------------------------------------
# Blocks of a directory
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Block:
    kind: str
    labels: list[str]
    attributes: dict[str, Tree]
    blocks: list[Block]
    file: str = ""

    def children(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


def _token_text(node: Tree | Token) -> str:
    if isinstance(node, Token):
        return str(node)
    return "".join(_token_text(c) for c in node.children)


def _label(node: Tree) -> str:
    if node.data == "identifier":
        return _token_text(node)
    if node.data == "string":
        return "".join(_token_text(c) for c in node.children if isinstance(c, Tree))
    raise Unsupported(f"block label {node.data}")


def _block(node: Tree, file: str) -> Block:
    parts = [c for c in node.children if isinstance(c, Tree)]
    kind = _token_text(parts[0])
    labels = [_label(p) for p in parts[1:] if p.data in ("identifier", "string")]
    body = next(p for p in parts if p.data == "body")
    attributes, blocks = _body(body, file)
    return Block(kind, labels, attributes, blocks, file)


def _body(body: Tree, file: str) -> tuple[dict[str, Tree], list[Block]]:
    attributes: dict[str, Tree] = {}
    blocks: list[Block] = []
    for child in body.children:
        if not isinstance(child, Tree):
            continue
        if child.data == "attribute":
            name, expr = [c for c in child.children if isinstance(c, Tree)][:2]
            attributes[_token_text(name)] = expr
        elif child.data == "block":
            blocks.append(_block(child, file))
    return attributes, blocks


def load_blocks(folder: Path) -> list[Block]:
    out: list[Block] = []
    for path in sorted(folder.glob("*.tf")):
        _, blocks = _body(parse_file(path).children[0], path.name)
        out.extend(blocks)
    return out


def load_tfvars(path: Path) -> dict[str, Any]:
    attributes, _ = _body(parse_file(path).children[0], path.name)
    scope = Scope(None)  # tfvars hold literals only
    return {name: scope.eval(expr) for name, expr in attributes.items()}


# ---------------------------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------------------------

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "&&": lambda a, b: a and b,
    "||": lambda a, b: a or b,
}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)
    return text.replace("$${", "${").replace("%%{", "%{")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise Unsupported("null interpolated into a string")
    return str(value)


def _trees(node: Tree) -> list[Tree]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


class Scope:
    """Evaluates expressions; `resolve(name)` answers the root identifiers (var, local, each, a resource type)."""

    def __init__(self, resolve: Callable[[str], Any] | None, names: dict[str, Any] | None = None) -> None:
        self._resolve = resolve
        self.names = names or {}

    def child(self, **names: Any) -> Scope:
        return Scope(self._resolve, {**self.names, **names})

    def lookup(self, name: str) -> Any:
        if name in self.names:
            return self.names[name]
        if self._resolve is None:
            raise Unsupported(f"reference to {name} where only literals are allowed")
        return self._resolve(name)

    def eval(self, node: Tree | Token) -> Any:  # noqa: C901 - one dispatch over the grammar's node kinds
        if isinstance(node, Token):
            raise Unsupported(f"token {node.type}")
        kind = node.data
        kids = _trees(node)
        if kind in ("expr_term", "object_elem_key") and len(kids) == 1:
            return self.eval(kids[0])
        if kind == "expr_term":  # parenthesised
            return self.eval(kids[0])
        if kind == "int_lit":
            return int(_token_text(node))
        if kind == "float_lit":
            return float(_token_text(node))
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[_token_text(node).strip()]
        if kind == "string":
            parts = [self._string_part(p) for p in kids]
            if len(parts) == 1 and not isinstance(parts[0], str):
                return parts[0]  # "${x}" keeps x's type, as Terraform does
            return "".join(_text(p) for p in parts)
        if kind == "heredoc_template":
            raise Unsupported("heredoc")
        if kind in ("identifier", "keyword"):
            return self.lookup(_token_text(node))
        if kind == "tuple":
            return [self.eval(k) for k in kids]
        if kind == "object":
            return {self._object_key(elem): self.eval(_trees(elem)[1]) for elem in kids}
        if kind == "get_attr_expr_term":
            base, attr = kids
            return get_attr(self.eval(base), _token_text(_trees(attr)[0]))
        if kind == "index_expr_term":
            base, index = kids
            value = self.eval(base)
            if index.data == "short_index":
                return get_index(value, int(_token_text(index).lstrip(".")))
            return get_index(value, self.eval(_trees(index)[0]))
        if kind == "function_call":
            name = _token_text(kids[0])
            args = _trees(kids[1]) if len(kids) > 1 else []
            return call(name, args, self)
        if kind == "conditional":
            cond, yes, no = kids
            return self.eval(yes) if self.eval(cond) else self.eval(no)
        if kind == "binary_op":
            left, term = kids[0], kids[1]
            op_node, right = _trees(term)
            op = _token_text(op_node).strip()
            return _BINARY[op](self.eval(left), self.eval(right))
        if kind == "unary_op":
            op = _token_text(node.children[0]).strip()
            value = self.eval(kids[0])
            return (not value) if op == "!" else -value
        if kind in ("for_tuple_expr", "for_object_expr"):
            return self._for(kind, kids)
        raise Unsupported(f"expression {kind}")

    def _object_key(self, elem: Tree) -> Any:
        node = _trees(elem)[0]
        while node.data in ("object_elem_key", "expr_term") and len(_trees(node)) == 1:
            node = _trees(node)[0]
        if node.data == "identifier":
            return _token_text(node)  # a bare name is a literal key, as in Terraform
        return self.eval(node)

    def _string_part(self, part: Tree) -> Any:
        inner = _trees(part)
        if inner and inner[0].data == "interpolation":
            return self.eval(_trees(inner[0])[0])
        return _unescape(_token_text(part))

    def _for(self, kind: str, kids: list[Tree]) -> Any:
        intro, *rest = kids
        names = [_token_text(k) for k in _trees(intro) if k.data == "identifier"]
        source = self.eval(next(k for k in _trees(intro) if k.data != "identifier"))
        cond = next((k for k in rest if k.data == "for_cond"), None)
        exprs = [k for k in rest if k.data != "for_cond"]
        pairs = list(source.items()) if hasattr(source, "items") else list(enumerate(source))
        out_list, out_map = [], {}
        for key, value in pairs:
            bound = {names[0]: value} if len(names) == 1 else {names[0]: key, names[1]: value}
            scope = self.child(**bound)
            if cond is not None and not scope.eval(_trees(cond)[0]):
                continue
            if kind == "for_tuple_expr":
                out_list.append(scope.eval(exprs[0]))
            else:
                out_map[scope.eval(exprs[0])] = scope.eval(exprs[1])
        return out_list if kind == "for_tuple_expr" else out_map


def get_attr(value: Any, name: str) -> Any:
    if isinstance(value, Unknown):
        return Unknown(f"{value.what}.{name}")
    if isinstance(value, dict):
        if name not in value:
            raise Unsupported(f"no attribute {name!r} in {sorted(value)}")
        return value[name]
    if hasattr(value, "attr"):
        return value.attr(name)
    raise Unsupported(f"attribute {name} of {type(value).__name__}")


def get_index(value: Any, index: Any) -> Any:
    if isinstance(value, Unknown):
        return Unknown(f"{value.what}[{index}]")
    if hasattr(value, "index"):
        return value.index(index)
    return value[index]


def _call_try(args: list[Tree], scope: Scope) -> Any:
    for arg in args:
        try:
            value = scope.eval(arg)
        except (Unsupported, KeyError, IndexError, TypeError):
            continue
        if not isinstance(value, Unknown):
            return value
    raise Unsupported("try(): no argument evaluated")


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "trim": lambda s, chars: s.strip(chars),
    "trimsuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
    "trimprefix": lambda s, prefix: s[len(prefix) :] if s.startswith(prefix) else s,
    "concat": lambda *lists: [x for lst in lists for x in lst],
    "values": lambda m: list(m.values()),
    "keys": lambda m: list(m),
    "coalesce": lambda *xs: next(x for x in xs if x not in (None, "")),
    "merge": lambda *ms: {k: v for m in ms for k, v in m.items()},
    "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
    "toset": lambda xs: list(dict.fromkeys(xs)),
    "tolist": list,
    "length": len,
    "contains": lambda xs, x: x in xs,
    "startswith": lambda s, p: s.startswith(p),
    "endswith": lambda s, p: s.endswith(p),
    "strcontains": lambda s, p: p in s,
    "lower": str.lower,
    "upper": str.upper,
    "replace": lambda s, a, b: s.replace(a, b),
    "sha256": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "format": lambda f, *a: re.sub(r"%[sdv]", "{}", f).format(*a),
    "flatten": lambda xs: [y for x in xs for y in (x if isinstance(x, list) else [x])],
    "distinct": lambda xs: list(dict.fromkeys(xs)),
    "compact": lambda xs: [x for x in xs if x not in (None, "")],
}


def call(name: str, args: list[Tree], scope: Scope) -> Any:
    if name == "try":
        return _call_try(args, scope)
    if name not in _FUNCTIONS:
        raise Unsupported(f"function {name}()")
    values = [scope.eval(a) for a in args]
    unknown = next((v for v in values if isinstance(v, Unknown)), None)
    if unknown is not None:
        return Unknown(f"{name}({unknown.what})")
    return _FUNCTIONS[name](*values)


# ---------------------------------------------------------------------------------------------------------------
# Modules, resources and data sources
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Namespace:
    """`var`, `local`, `module`, `data` or a resource type: attribute access resolves a name."""

    resolve: Callable[[str], Any]

    def attr(self, name: str) -> Any:
        return self.resolve(name)


# Computed attributes of the resource types lh360's wiring reads, from each type's documented ARN format.
def _computed(rtype: str, inst: ResourceInstance, name: str) -> Any:
    m = inst.module
    region, account = m.region, ACCOUNT
    if rtype == "aws_s3_bucket":
        bucket = inst.arg("bucket")
        return {"id": bucket, "bucket": bucket, "arn": f"arn:{PARTITION}:s3:::{bucket}"}.get(name, Unknown(name))
    if rtype == "aws_kms_key":
        key_id = "11111111-2222-4333-8444-" + hashlib.sha256(inst.address.encode()).hexdigest()[:12]
        return {"key_id": key_id, "id": key_id, "arn": f"arn:{PARTITION}:kms:{region}:{account}:key/{key_id}"}.get(
            name, Unknown(name)
        )
    if rtype == "aws_athena_workgroup":
        wg = inst.arg("name")
        return {"id": wg, "name": wg, "arn": f"arn:{PARTITION}:athena:{region}:{account}:workgroup/{wg}"}.get(
            name, Unknown(name)
        )
    if rtype == "aws_glue_catalog_database":
        db = inst.arg("name")
        return {
            "name": db,
            "id": f"{account}:{db}",
            "arn": f"arn:{PARTITION}:glue:{region}:{account}:database/{db}",
        }.get(name, Unknown(name))
    if rtype in ("aws_iam_role", "aws_iam_policy"):
        kind = "role" if rtype == "aws_iam_role" else "policy"
        n = inst.arg("name")
        return {"name": n, "id": n, "arn": f"arn:{PARTITION}:iam::{account}:{kind}/{n}"}.get(name, Unknown(name))
    return Unknown(f"{inst.address}.{name}")


@dataclass
class ResourceInstance:
    module: Module
    block: Block
    address: str
    each: dict[str, Any] | None = None

    def arg(self, name: str) -> Any:
        scope = self.module.scope.child(**({"each": self.each} if self.each is not None else {}))
        return scope.eval(self.block.attributes[name])

    def attr(self, name: str) -> Any:
        rtype = self.block.labels[0]
        computed = _computed(rtype, self, name) if self.block.kind == "resource" else None
        if computed is not None and not isinstance(computed, Unknown):
            return computed
        if name in self.block.attributes:
            return self.arg(name)
        if self.block.kind == "data":
            return self.module.data_attr(self, name)
        return computed if computed is not None else Unknown(f"{self.address}.{name}")


@dataclass
class Resource:
    """A resource or data block; with for_each, indexing by key gives an instance."""

    module: Module
    block: Block

    @property
    def address(self) -> str:
        prefix = "data." if self.block.kind == "data" else ""
        return prefix + ".".join(self.block.labels)

    def instances(self) -> dict[Any, ResourceInstance] | ResourceInstance:
        if "for_each" in self.block.attributes:
            items = self.module.scope.eval(self.block.attributes["for_each"])
            pairs = items.items() if isinstance(items, dict) else ((x, x) for x in items)
            return {
                k: ResourceInstance(self.module, self.block, f"{self.address}[{k!r}]", {"key": k, "value": v})
                for k, v in pairs
            }
        if "count" in self.block.attributes:
            n = self.module.scope.eval(self.block.attributes["count"])
            return {i: ResourceInstance(self.module, self.block, f"{self.address}[{i}]") for i in range(n)}
        return ResourceInstance(self.module, self.block, self.address)

    def _single(self) -> ResourceInstance:
        inst = self.instances()
        if isinstance(inst, dict):
            raise Unsupported(f"{self.address} has for_each/count: index it first")
        return inst

    def attr(self, name: str) -> Any:
        return self._single().attr(name)

    def arg(self, name: str) -> Any:
        return self._single().arg(name)

    def index(self, key: Any) -> Any:
        inst = self.instances()
        if not isinstance(inst, dict):
            raise Unsupported(f"{self.address} is not indexed")
        return inst[key]

    def items(self) -> Iterator[tuple[Any, ResourceInstance]]:  # `for k, r in aws_x.this`
        inst = self.instances()
        return iter(inst.items() if isinstance(inst, dict) else [(0, inst)])


@dataclass
class Module:
    path: Path
    inputs: dict[str, Any]
    region: str
    name: str = "root"
    blocks: list[Block] = field(default_factory=list)
    _memo: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.blocks = load_blocks(self.path)
        self.scope = Scope(self._root_name)

    # declarations ---------------------------------------------------------------------------------------------
    def _find(self, kind: str, *labels: str) -> Block:
        for b in self.blocks:
            if b.kind == kind and tuple(b.labels[: len(labels)]) == labels:
                return b
        raise Unsupported(f"{self.name}: no {kind} {'.'.join(labels)}")

    def _locals(self) -> dict[str, Tree]:
        out: dict[str, Tree] = {}
        for b in self.blocks:
            if b.kind == "locals":
                out.update(b.attributes)
        return out

    # references -----------------------------------------------------------------------------------------------
    def _root_name(self, name: str) -> Any:
        if name == "var":
            return Namespace(self.var)
        if name == "local":
            return Namespace(self.local)
        if name == "module":
            return Namespace(self.module)
        if name == "data":
            return Namespace(lambda rtype: Namespace(lambda n: self._resource("data", rtype, n)))
        if any(b.kind == "resource" and b.labels[0] == name for b in self.blocks):
            return Namespace(lambda n: self._resource("resource", name, n))
        raise Unsupported(f"{self.name}: unknown reference {name}")

    def _memoized(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def var(self, name: str) -> Any:
        if name in self.inputs:
            return self.inputs[name]
        block = self._find("variable", name)
        if "default" not in block.attributes:
            raise Unsupported(f"{self.name}: variable {name} has no value and no default")
        return self._memoized(("var", name), lambda: self.scope.eval(block.attributes["default"]))

    def local(self, name: str) -> Any:
        declared = self._locals()
        if name not in declared:
            raise Unsupported(f"{self.name}: no local {name}")
        return self._memoized(("local", name), lambda: self.scope.eval(declared[name]))

    def output(self, name: str) -> Any:
        return self._memoized(("output", name), lambda: self.scope.eval(self._find("output", name).attributes["value"]))

    def module(self, name: str) -> Any:
        def build() -> Namespace:
            block = self._find("module", name)
            source = self.scope.eval(block.attributes["source"])
            meta = {"source", "version", "providers", "count", "for_each", "depends_on"}
            inputs = {k: self.scope.eval(v) for k, v in block.attributes.items() if k not in meta}
            child = Module((self.path / source).resolve(), inputs, self.region, name=f"{self.name}.{name}")
            return _ModuleRef(child)

        return self._memoized(("module", name), build)

    def _resource(self, kind: str, rtype: str, name: str) -> Resource:
        return Resource(self, self._find(kind, rtype, name))

    def child(self, name: str) -> Module:
        ref = self.module(name)
        return ref.instance

    def resource(self, rtype: str, name: str) -> Resource:
        return self._resource("resource", rtype, name)

    # data sources ---------------------------------------------------------------------------------------------
    def data_attr(self, inst: ResourceInstance, name: str) -> Any:
        dtype = inst.block.labels[0]
        if dtype == "aws_caller_identity" and name == "account_id":
            return ACCOUNT
        if dtype == "aws_partition" and name == "partition":
            return PARTITION
        if dtype == "aws_region" and name in ("id", "name", "region"):
            return self.region
        if dtype == "aws_iam_policy_document" and name == "json":
            return json.dumps(self.policy_document(inst.block))
        return Unknown(f"{inst.address}.{name}")

    def policy_document(self, block: Block) -> dict[str, Any]:
        """The JSON the AWS provider renders for an aws_iam_policy_document: one Statement per block."""
        statements = []
        for st in block.children("statement"):
            statements.append(render_statement(self.scope, st))
        return {"Version": "2012-10-17", "Statement": statements}

    def policy(self, name: str) -> dict[str, Any]:
        return self.policy_document(self._find("data", "aws_iam_policy_document", name))


@dataclass
class _ModuleRef:
    instance: Module

    def attr(self, name: str) -> Any:
        return self.instance.output(name)


_STATEMENT_KEYS = {
    "sid": "Sid",
    "effect": "Effect",
    "actions": "Action",
    "not_actions": "NotAction",
    "resources": "Resource",
    "not_resources": "NotResource",
}


def render_statement(scope: Scope, st: Block) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, json_key in _STATEMENT_KEYS.items():
        if key in st.attributes:
            out[json_key] = scope.eval(st.attributes[key])
    out.setdefault("Effect", "Allow")
    for principals in st.children("principals"):
        kind = scope.eval(principals.attributes["type"])
        out.setdefault("Principal", {})[kind] = scope.eval(principals.attributes["identifiers"])
    for cond in st.children("condition"):
        test = scope.eval(cond.attributes["test"])
        variable = scope.eval(cond.attributes["variable"])
        out.setdefault("Condition", {}).setdefault(test, {})[variable] = scope.eval(cond.attributes["values"])
    return out


def has_unknowns(value: Any) -> list[str]:
    """Every `<unknown:...>` left in a rendered value."""
    text = json.dumps(value, default=str)
    return re.findall(r"<unknown:[^>\"]*>", text)
