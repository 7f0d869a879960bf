"""Keeps the Swift code honest without a Swift toolchain (run by scripts/check-swift).

1. Parses every Swift file of bindings/swift and examples/swift with the tree-sitter Swift
   grammar and fails on any syntax error.
2. Checks the hand-written code against the uniffi-generated bindings: every function, method,
   initializer or enum case it calls must be declared (in the generated or hand-written code, or
   be a Swift/Foundation name listed in KNOWN below), with argument labels that fit one of the
   declarations (defaulted parameters may be left out); every hand-written class that adopts a
   generated protocol must declare each of its methods with the same labels.

What this cannot see: types, overload resolution, concurrency checking, access control. It is
a parse and a by-name/by-label check, not a compile; bindings/swift/README.md says so.

Two spots where the grammar lags the language are rewritten before parsing, keeping line
numbers: `#if swift(>=X)` / `#if compiler(>=X)` blocks are resolved as Swift 5.9 would (the
grammar rejects attributes inside them), and the empty-tuple closure `{ () }` (rejected by the
grammar, emitted by uniffi) is read as `{ }`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tree_sitter_swift
from tree_sitter import Language, Parser

ROOT = Path(__file__).resolve().parent.parent
GENERATED = sorted((ROOT / "bindings/swift/Sources/SupaRealtimeGenerated").glob("*.swift"))
HANDWRITTEN = sorted((ROOT / "bindings/swift/Sources/SupaRealtime").glob("*.swift")) + sorted(
    (ROOT / "examples/swift/Sources").rglob("*.swift")
)
MANIFESTS = [ROOT / "bindings/swift/Package.swift", ROOT / "examples/swift/Package.swift"]
SWIFT_VERSION = (5, 9)

# Swift standard library, Foundation and Dispatch names the hand-written code uses (members
# and calls). A name missing here and from both layers is reported: add it only after checking
# the Apple documentation, never to silence a typo.
KNOWN = set(
    """
    AsyncStream makeStream yield finish onTermination Task Result get success failure
    String Data Int UInt32 UInt64 Double Bool Array Dictionary Set print max min
    map filter values joined append removeValue rounded utf8 isEmpty lock unlock
    caseInsensitiveCompare orderedSame JSONEncoder JSONDecoder encode decode
    JSONSerialization jsonObject data sortedKeys DispatchSemaphore signal wait
    NSLock sleep CommandLine arguments count cancel run MainActor nanoseconds self defer
    rawValue split trimmingCharacters contains
    """.split()
)

parser = Parser(Language(tree_sitter_swift.language()))


def preprocess(text: str) -> str:
    """Resolves `#if swift(...)`/`#if compiler(...)` for SWIFT_VERSION; blanks what it drops."""
    out, stack = [], []  # stack entries: [resolved?, active]
    for line in text.split("\n"):
        s = line.strip()
        m = re.match(r"#if\s+(swift|compiler)\((>=|<)\s*([\d.]+)\)\s*$", s)
        if m:
            v = tuple(int(x) for x in m.group(3).split("."))
            stack.append([True, SWIFT_VERSION >= v if m.group(2) == ">=" else SWIFT_VERSION < v])
            out.append("")
            continue
        if s.startswith("#if"):
            stack.append([False, True])
        elif s.startswith("#else") and stack and stack[-1][0]:
            stack[-1][1] = not stack[-1][1]
            out.append("")
            continue
        elif s.startswith("#endif") and stack:
            resolved, _ = stack.pop()
            out.append("" if resolved else line)
            continue
        out.append(line if all(active for resolved, active in stack if resolved) else "")
    return "\n".join(out).replace("{ () }", "{    }")


def parse(path: Path):
    return parser.parse(preprocess(path.read_text()).encode())


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def syntax_errors(path: Path, tree) -> list[str]:
    found = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            row, col = n.start_point
            snippet = n.text.decode(errors="replace").split("\n")[0][:60]
            what = f"missing {n.type}" if n.is_missing else f"syntax error near `{snippet}`"
            found.append(f"{rel(path)}:{row + 1}:{col + 1}: {what}")
        elif n.has_error:
            for c in n.children:
                walk(c)

    walk(tree.root_node)
    return found


def text(n) -> str:
    return n.text.decode().strip("`")


def params(decl) -> list[tuple[str, bool]]:
    """(external label, has default) of a function/init declaration's parameters."""
    out = []
    kids = decl.children
    for i, c in enumerate(kids):
        if c.type != "parameter":
            continue
        ext = c.child_by_field_name("external_name")
        name = c.child_by_field_name("name")
        label = text(ext) if ext is not None else text(name)
        # a default value follows the parameter as `= value` in the declaration
        has_default = i + 1 < len(kids) and kids[i + 1].type == "="
        out.append((label, has_default))
    return out


class Decls:
    """Declarations of one layer: names, call signatures by name, protocols' requirements."""

    def __init__(self):
        self.names: set[str] = set()
        self.sigs: dict[str, list[list[tuple[str, bool]]]] = {}
        self.protocols: dict[str, list[tuple[str, list[str]]]] = {}
        self.types_without_init: set[str] = set()
        # parameters, generic parameters and closure parameters: callable locals, not checked
        self.locals: set[str] = set()
        self.classes: list[tuple[Path, int, str, list[str], list[tuple[str, list[str]]]]] = []

    def add_sig(self, name, sig):
        self.sigs.setdefault(name, []).append(sig)

    def collect(self, path: Path, tree):
        def type_name(n):
            name = n.child_by_field_name("name")
            return text(name) if name is not None else None

        def walk(n, owner=None):
            t = n.type
            if t in ("class_declaration", "protocol_declaration"):
                tn = type_name(n)
                if tn:
                    self.names.add(tn)
                body = n.child_by_field_name("body")
                has_init = body is not None and any(c.type == "init_declaration" for c in body.children)
                kind = n.child_by_field_name("declaration_kind")
                kind = kind.text.decode() if kind is not None else ""
                if kind in ("struct", "enum") and not has_init and tn:
                    self.types_without_init.add(tn)
                if t == "protocol_declaration" and tn and body is not None:
                    reqs = []
                    for c in body.children:
                        if c.type == "protocol_function_declaration":
                            reqs.append((text(c.child_by_field_name("name")), [l for l, _ in params(c)]))
                    self.protocols[tn] = reqs
                if t == "class_declaration" and kind == "class" and tn and body is not None:
                    supers = [text(c) for c in n.children if c.type == "inheritance_specifier"]
                    methods = [
                        (text(c.child_by_field_name("name")), [l for l, _ in params(c)])
                        for c in body.children
                        if c.type == "function_declaration"
                    ]
                    self.classes.append((path, n.start_point[0] + 1, tn, supers, methods))
                for c in n.children:
                    walk(c, tn)
                return
            if t in ("function_declaration", "protocol_function_declaration"):
                name = text(n.child_by_field_name("name"))
                self.names.add(name)
                self.add_sig(name, params(n))
            elif t == "init_declaration" and owner:
                self.add_sig(owner, params(n))
            elif t == "enum_entry":
                names = [c for c in n.children if c.type == "simple_identifier"]
                for i, c in enumerate(n.children):
                    if c.type != "simple_identifier":
                        continue
                    case = text(c)
                    self.names.add(case)
                    nxt = n.children[i + 1] if i + 1 < len(n.children) else None
                    if nxt is not None and nxt.type == "enum_type_parameters":
                        # `(label: Type, Type, ...)`: one segment per associated value
                        labels, segment = [], []
                        for p in nxt.children[1:]:
                            if p.type in (",", ")"):
                                if segment:
                                    named = len(segment) > 1 and segment[0].type == "simple_identifier" and segment[1].type == ":"
                                    labels.append((text(segment[0]) if named else "_", False))
                                segment = []
                            else:
                                segment.append(p)
                        self.add_sig(case, labels)
                del names
            elif t == "property_declaration":
                for c in n.children:
                    if c.type == "pattern":
                        b = c.child_by_field_name("bound_identifier")
                        if b is not None:
                            self.names.add(text(b))
            elif t == "parameter":
                name = n.child_by_field_name("name")
                if name is not None and name.type == "simple_identifier":
                    self.locals.add(text(name))
            elif t in ("type_parameter", "lambda_parameter"):
                for c in n.children:
                    if c.type in ("type_identifier", "simple_identifier"):
                        self.locals.add(text(c))
            elif t in ("typealias_declaration", "associatedtype_declaration"):
                name = n.child_by_field_name("name")
                if name is not None:
                    self.names.add(text(name))
            for c in n.children:
                walk(c, owner)

        walk(tree.root_node)


def fits(call: list[str], decl: list[tuple[str, bool]]) -> bool:
    """Whether call labels ('_' unlabeled, '*' trailing closure) fit a parameter list."""
    i = 0
    for label, has_default in decl:
        if i < len(call) and (call[i] == label or call[i] == "*"):
            i += 1
        elif not has_default:
            return False
    return i == len(call)


def calls(tree):
    """(name, labels, line) of every call, and (name, line) of every member access."""
    out, members = [], []

    def callee_name(n):
        if n.type == "simple_identifier":
            return text(n)
        if n.type == "navigation_expression":
            suffix = n.child_by_field_name("suffix")
            s = suffix.child_by_field_name("suffix") if suffix is not None else None
            return text(s) if s is not None and s.type == "simple_identifier" else None
        if n.type == "prefix_expression":
            target = n.child_by_field_name("target")
            op = n.child_by_field_name("operation")
            if op is not None and op.text == b"." and target is not None and target.type == "simple_identifier":
                return text(target)
        return None

    def walk(n):
        if n.type == "call_expression" and n.children:
            name = callee_name(n.children[0])
            suffix = next((c for c in n.children if c.type == "call_suffix"), None)
            if name and suffix is not None:
                labels = []
                for c in suffix.children:
                    if c.type == "value_arguments":
                        for a in c.children:
                            if a.type == "value_argument":
                                lab = a.child_by_field_name("name")
                                labels.append(text(lab) if lab is not None else "_")
                    elif c.type == "lambda_literal":
                        labels.append("*")
                out.append((name, labels, n.start_point[0] + 1))
        if n.type == "navigation_expression":
            name = callee_name(n)
            if name:
                members.append((name, n.start_point[0] + 1))
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return out, members


def main() -> int:
    problems: list[str] = []
    trees = {}
    for path in GENERATED + HANDWRITTEN + MANIFESTS:
        if not path.exists():
            problems.append(f"{rel(path)}: missing")
            continue
        trees[path] = parse(path)
        problems += syntax_errors(path, trees[path])

    generated, handwritten = Decls(), Decls()
    for path in GENERATED:
        generated.collect(path, trees[path])
    for path in HANDWRITTEN:
        handwritten.collect(path, trees[path])
    names = generated.names | handwritten.names | KNOWN
    checked = 0
    for path in HANDWRITTEN:
        found, members = calls(trees[path])
        for name, labels, line in found:
            if name in handwritten.locals or name in KNOWN:
                checked += 1
                continue
            sigs = generated.sigs.get(name, []) + handwritten.sigs.get(name, [])
            if name not in names and name not in generated.sigs and name not in handwritten.sigs:
                problems.append(f"{rel(path)}:{line}: `{name}` is declared nowhere (generated, hand-written or KNOWN)")
            elif sigs and name not in handwritten.types_without_init and not any(fits(labels, s) for s in sigs):
                want = " | ".join("(" + ", ".join(f"{l}:" + ("=" if d else "") for l, d in s) + ")" for s in sigs)
                problems.append(f"{rel(path)}:{line}: `{name}({''.join(l + ':' for l in labels)})` fits no declaration: {want}")
            checked += 1
        for name, line in members:
            if name not in names and name not in generated.sigs:
                problems.append(f"{rel(path)}:{line}: member `{name}` is declared nowhere (generated, hand-written or KNOWN)")
            checked += 1
    for path, line, cls, supers, methods in handwritten.classes:
        for proto in supers:
            for req, labels in generated.protocols.get(proto, []):
                if (req, labels) not in methods:
                    problems.append(
                        f"{rel(path)}:{line}: {cls} adopts {proto} but lacks `{req}({''.join(l + ':' for l in labels)})`"
                    )
                checked += 1

    for p in problems:
        print(p)
    files = len(trees)
    print(f"swift check: {files} files parsed, {checked} uses checked against the generated bindings, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
