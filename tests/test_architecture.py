"""The shape of the house, checked on the source: the import graph of the package.

CONVENTIONS.md: data flows one way, ``pipeline.py`` strings the stages
together, ``cli.py`` is the outermost shell, and no stage reaches into another's
internals.  These tests read every module of ``verirepair`` (and of
its former sibling ``acasxu_nets``, now ``verirepair.tasks.acasxu``) with :mod:`ast`, without importing anything,
and check five rules:

(a) no import cycles, among modules and among the top-level packages;
(b) no module imports a private name (``_x``) of another module, neither as
    ``from a.b import _x`` nor as ``a.b._x`` through an imported module;
(c) the stage packages never import the top floor, and only ``cli`` (and the
    harness itself) imports :mod:`verirepair.harness`;
(d) no star imports;
(e) every import of an internal module names one that exists.

What counts as an import, decided once:

* Imports inside functions count.  A lazy import defers the cost of a module,
  it does not remove the dependency: a cycle through one is still a design
  circle (issue 10 lists pipeline / certify_loop / report, a cycle of that
  kind).
* Imports under ``if TYPE_CHECKING:`` do not count: they never run, and they
  are the sanctioned way to name a type from a module that may not be imported.
* ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else an
  edge to ``a.b``.  Importing ``a.b.c`` also runs ``a/__init__`` and
  ``a/b/__init__``, but those implicit edges are left out: every module of a
  package that re-exports its submodules would otherwise be on a cycle, and
  Python handles that case by design.

Known violations that other work in issue 10 is removing are listed in the
``KNOWN_*`` allow-lists below.  Each entry must still be a violation (a stale
entry fails too), so the lists only shrink.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Top-level packages whose modules make up the graph (missing ones are skipped).
PACKAGES = ("verirepair",)

#: The stage packages: each is one arrow of the pipeline (CONVENTIONS.md).
STAGE_PACKAGES = tuple(f"verirepair.{name}" for name in
                       ("network", "properties", "verify", "localize", "repair", "solvers"))

#: The top floor and the edge: what strings the stages together, presents or
#: writes their results, or knows about one benchmark.  A stage importing any
#: of these would make the data flow both ways.
TOP_FLOOR = tuple(f"verirepair.{name}" for name in (
    "pipeline", "certify_loop", "counterexamples", "cross_check", "fidelity", "demo", "run_config", "task",
    "tasks", "outcome", "report", "report_plots", "render", "cli", "harness", "repair_certificates"))

#: Test and benchmark harnesses; only the CLI may import them.
HARNESS = "verirepair.harness"
HARNESS_IMPORTERS = ("verirepair.cli",)

# -- known violations, being removed -------------------------------------------

#: Module import edges (importer, imported) that close a cycle today; the
#: cycle test ignores them.  Each is the edge that points the wrong way.
#: being removed by issue 10 (owner: lead)
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()

#: Top-level package edges (importer, imported) that close a package cycle today.
#: being removed by issue 10 (owner: lead)
KNOWN_PACKAGE_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()

#: (importer, imported) imports of an internal module that does not exist.
#: Lazy imports inside functions only fail when the function runs, so a move
#: can leave one behind that no import-time test notices.
#: being removed by issue 10 (owner: lead)
KNOWN_UNRESOLVED: frozenset[tuple[str, str]] = frozenset()

#: (importer, "module.name") private imports that exist today.
#: being removed by issue 10 (owner: lead)
KNOWN_PRIVATE_IMPORTS: frozenset[tuple[str, str]] = frozenset()

#: (importer, imported) edges from a stage package up to the top floor today.
#: being removed by issue 10 (owner: lead)
KNOWN_LAYER_EDGES: frozenset[tuple[str, str]] = frozenset()


# -- reading the source ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Import:
    """One import edge: ``importer`` (at ``path:line``) needs module ``target``."""

    importer: str
    target: str
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class PrivateUse:
    """``importer`` (at ``path:line``) uses the private name ``name`` of ``module``."""

    importer: str
    module: str
    name: str
    path: str
    line: int


@dataclass(frozen=True, slots=True)
class ModuleSource:
    """A module's dotted name, its file (relative to the repository) and its syntax tree."""

    name: str
    path: str
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package a relative import in this module starts from."""
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


def discover_modules(root: Path = ROOT,
                     packages: Iterable[str] = PACKAGES) -> dict[str, ModuleSource]:
    """Every ``.py`` file under ``root/<package>``, parsed, by dotted module name."""
    modules: dict[str, ModuleSource] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for file in sorted(base.rglob("*.py")):
            if "__pycache__" in file.parts:
                continue
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            rel = file.relative_to(root).as_posix()
            tree = ast.parse(file.read_text(encoding="utf-8"), filename=rel)
            modules[".".join(parts)] = ModuleSource(".".join(parts), rel, tree)
    return modules


def is_private(name: str) -> bool:
    """``_x`` is private; ``__x__`` (a dunder such as ``__version__``) is not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


class _ImportVisitor(ast.NodeVisitor):
    """Collects the imports, star imports and private-name uses of one module."""

    def __init__(self, source: ModuleSource, modules: Mapping[str, ModuleSource]) -> None:
        self.source = source
        self.modules = modules
        self.tops = {name.partition(".")[0] for name in modules}
        self.imports: list[Import] = []
        self.private: list[PrivateUse] = []
        self.stars: list[Import] = []
        self.unresolved: list[Import] = []
        #: local name -> internal module it is bound to (``import a.b as m``)
        self.bound: dict[str, str] = {}

    def _internal(self, module: str) -> bool:
        return module.partition(".")[0] in self.tops

    def _known(self, module: str) -> str:
        """``module``, or its longest prefix that is a known module."""
        while module and module not in self.modules:
            module = module.rpartition(".")[0]
        return module

    def _edge(self, target: str, node: ast.stmt) -> None:
        if target not in self.modules:
            self.unresolved.append(Import(self.source.name, target, self.source.path,
                                          node.lineno))
        target = self._known(target)
        if target and target != self.source.name:
            self.imports.append(Import(self.source.name, target, self.source.path, node.lineno))

    def _private(self, module: str, name: str, line: int) -> None:
        if module != self.source.name:
            self.private.append(PrivateUse(self.source.name, module, name, self.source.path, line))

    def _private_module(self, module: str, line: int) -> None:
        """A private component of a module path is private to its parent package."""
        parts = module.split(".")
        for index, part in enumerate(parts):
            parent = ".".join(parts[:index])
            if is_private(part) and not (self.source.name + ".").startswith(parent + "."):
                self._private(parent, part, line)
                return

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not self._internal(alias.name):
                continue
            self._edge(alias.name, node)
            self._private_module(alias.name, node.lineno)
            if alias.asname:
                self.bound[alias.asname] = self._known(alias.name)
            else:
                top = alias.name.partition(".")[0]
                self.bound[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.source.package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        if not self._internal(base):
            return
        self._private_module(base, node.lineno)
        for alias in node.names:
            if alias.name == "*":
                self.stars.append(Import(self.source.name, base, self.source.path, node.lineno))
                self._edge(base, node)
                continue
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:
                self._edge(submodule, node)
                self.bound[alias.asname or alias.name] = submodule
            else:
                self._edge(base, node)
            if is_private(alias.name):
                self._private(self._known(base), alias.name, node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.bound:
            module = self.bound[value.id]
            for attr in reversed(chain):
                if f"{module}.{attr}" in self.modules:
                    module = f"{module}.{attr}"
                    continue
                if is_private(attr):
                    self._private(module, attr, node.lineno)
                break
            return  # the inner Attribute nodes are the same chain
        self.generic_visit(node)


@dataclass(frozen=True, slots=True)
class ImportGraph:
    """Everything the rules need, read from the source once."""

    modules: Mapping[str, ModuleSource]
    imports: tuple[Import, ...]
    private: tuple[PrivateUse, ...]
    stars: tuple[Import, ...]
    unresolved: tuple[Import, ...]

    def edges(self) -> dict[str, dict[str, Import]]:
        """``importer -> {target: first Import}``, every module a key."""
        graph: dict[str, dict[str, Import]] = {name: {} for name in self.modules}
        for imp in self.imports:
            graph[imp.importer].setdefault(imp.target, imp)
        return graph


def read_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> ImportGraph:
    """Parse the packages under ``root`` and collect their import graph."""
    modules = discover_modules(root, packages)
    imports: list[Import] = []
    private: list[PrivateUse] = []
    stars: list[Import] = []
    unresolved: list[Import] = []
    for source in modules.values():
        visitor = _ImportVisitor(source, modules)
        visitor.visit(source.tree)
        imports += visitor.imports
        private += visitor.private
        stars += visitor.stars
        unresolved += visitor.unresolved
    return ImportGraph(modules, tuple(imports), tuple(private), tuple(stars), tuple(unresolved))


# -- cycles ----------------------------------------------------------------------

def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one node (Tarjan).

    Parameters
    ----------
    graph : mapping of node -> successors
        Successors that are not keys are treated as nodes without edges.

    Returns
    -------
    list of list of str
        Each component sorted, the components sorted by their first node.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    succ = {node: list(targets) for node, targets in graph.items()}

    for start in sorted(succ):
        if start in index:
            continue
        # iterative DFS: (node, iterator over its successors)
        work = [(start, iter(succ.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(succ.get(target, ()))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def shortest_cycle(graph: Mapping[str, Iterable[str]], start: str) -> list[str]:
    """The shortest path ``start -> ... -> start`` in ``graph`` (breadth first), or ``[]``."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph.get(node, ())):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    return []


def describe_cycles(graph: Mapping[str, Mapping[str, Import]]) -> list[str]:
    """One line per cycle: ``a (a.py:3) -> b (b.py:7) -> a``, each edge with its import line."""
    lines = []
    for component in strongly_connected(graph):
        members = set(component)
        inside = {node: [t for t in graph[node] if t in members] for node in component}
        path = shortest_cycle(inside, component[0])
        hops = [f"{node} ({graph[node][after].path}:{graph[node][after].line})"
                for node, after in pairwise(path)]
        rest = (f"; the whole circle: {', '.join(component)}"
                if len(component) > len(path) - 1 else "")
        lines.append(" -> ".join([*hops, path[-1]]) + rest)
    return lines


def package_graph(graph: Mapping[str, Mapping[str, Import]]) -> dict[str, dict[str, Import]]:
    """The graph collapsed to top-level packages (see ``PACKAGES``)."""
    packages: dict[str, dict[str, Import]] = {}
    for node, targets in graph.items():
        top = node.partition(".")[0]
        packages.setdefault(top, {})
        for target, imp in targets.items():
            if target.partition(".")[0] != top:
                packages[top].setdefault(target.partition(".")[0], imp)
    return packages


def without(graph: Mapping[str, Mapping[str, Import]],
            edges: frozenset[tuple[str, str]]) -> dict[str, dict[str, Import]]:
    """``graph`` minus the given (importer, imported) edges."""
    return {node: {t: imp for t, imp in targets.items() if (node, t) not in edges}
            for node, targets in graph.items()}


def within(module: str, packages: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def upward_imports(graph: ImportGraph, lower: Iterable[str],
                   upper: Iterable[str]) -> dict[tuple[str, str], Import]:
    """Imports from a module in ``lower`` of one in ``upper``, by (importer, imported)."""
    lower, upper = tuple(lower), tuple(upper)
    return {(imp.importer, imp.target): imp for imp in graph.imports
            if within(imp.importer, lower) and within(imp.target, upper)}


def foreign_imports(graph: ImportGraph, package: str, allowed: Iterable[str]) -> list[Import]:
    """Imports of ``package`` from outside it and outside the ``allowed`` importers."""
    return [imp for imp in graph.imports
            if within(imp.target, (package,)) and not within(imp.importer, (package, *allowed))]


# -- the rules -------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return read_graph()


def _stale(known: frozenset[tuple[str, str]], actual: set[tuple[str, str]]) -> list[str]:
    return [f"{a} -> {b}" for a, b in sorted(known - actual)]


def test_the_graph_is_read(graph: ImportGraph) -> None:
    """Guard against a vacuous pass: the package and its stages are all there."""
    assert len(graph.modules) > 50, sorted(graph.modules)
    missing = [p for p in STAGE_PACKAGES if p not in graph.modules]
    assert not missing, f"stage packages not found (renamed? update STAGE_PACKAGES): {missing}"
    assert len(graph.imports) > 200


def test_no_import_cycles_among_modules(graph: ImportGraph) -> None:
    edges = graph.edges()
    cycles = describe_cycles(without(edges, KNOWN_CYCLE_EDGES))
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)
    on_cycle = {(a, b) for component in strongly_connected(edges)
                for a in component for b in edges[a] if b in component}
    stale = _stale(KNOWN_CYCLE_EDGES, on_cycle)
    assert not stale, f"no longer on a cycle, remove from KNOWN_CYCLE_EDGES: {stale}"


def test_no_import_cycles_among_packages(graph: ImportGraph) -> None:
    packages = package_graph(graph.edges())
    cycles = describe_cycles(without(packages, KNOWN_PACKAGE_CYCLE_EDGES))
    assert not cycles, "package import cycles:\n  " + "\n  ".join(cycles)
    on_cycle = {(a, b) for component in strongly_connected(packages)
                for a in component for b in packages[a] if b in component}
    stale = _stale(KNOWN_PACKAGE_CYCLE_EDGES, on_cycle)
    assert not stale, f"no longer on a cycle, remove from KNOWN_PACKAGE_CYCLE_EDGES: {stale}"


def test_no_module_imports_another_modules_private_names(graph: ImportGraph) -> None:
    found = {(use.importer, f"{use.module}.{use.name}"): use for use in graph.private}
    new = [f"{use.path}:{use.line}: {use.importer} uses {use.module}.{use.name}"
           for key, use in sorted(found.items()) if key not in KNOWN_PRIVATE_IMPORTS]
    assert not new, ("private names used across modules (make the name public, or move the "
                     "code that needs it):\n  " + "\n  ".join(new))
    stale = _stale(KNOWN_PRIVATE_IMPORTS, set(found))
    assert not stale, f"no longer used, remove from KNOWN_PRIVATE_IMPORTS: {stale}"


def test_stages_never_import_the_top_floor(graph: ImportGraph) -> None:
    found = upward_imports(graph, STAGE_PACKAGES, TOP_FLOOR)
    new = [f"{imp.path}:{imp.line}: {imp.importer} imports {imp.target}"
           for key, imp in sorted(found.items()) if key not in KNOWN_LAYER_EDGES]
    assert not new, "a stage imports the top floor:\n  " + "\n  ".join(new)
    stale = _stale(KNOWN_LAYER_EDGES, set(found))
    assert not stale, f"no longer imported, remove from KNOWN_LAYER_EDGES: {stale}"


def test_only_the_cli_imports_the_harness(graph: ImportGraph) -> None:
    bad = [f"{imp.path}:{imp.line}: {imp.importer} imports {imp.target}"
           for imp in foreign_imports(graph, HARNESS, HARNESS_IMPORTERS)]
    assert not bad, "only the CLI may import the harness:\n  " + "\n  ".join(bad)


#: The certificate checker (issue 13) must share no code with the verifier: it
#: may use itself, the VNN-LIB reader (no bounding code; it reads named tolerance
#: constants), errors and the file hash.
CHECKER = "verirepair.checker"
CHECKER_MAY_IMPORT = (CHECKER, "verirepair.properties", "verirepair.errors", "verirepair.atomic",
                      "verirepair.tolerances")


def test_the_checker_shares_no_code_with_the_verifier(graph: ImportGraph) -> None:
    assert any(within(m, (CHECKER,)) for m in graph.modules), "the checker package is missing"
    reached, todo = set(), [m for m in graph.modules if within(m, (CHECKER,))]
    while todo:            # everything the checker needs, transitively
        module = todo.pop()
        for imp in graph.imports:
            if imp.importer == module and imp.target not in reached:
                reached.add(imp.target)
                todo.append(imp.target)
    bad = sorted(m for m in reached if m.startswith("verirepair") and not within(m, CHECKER_MAY_IMPORT))
    assert not bad, f"the checker (transitively) imports {bad}; allowed: {CHECKER_MAY_IMPORT}"


def test_no_star_imports(graph: ImportGraph) -> None:
    bad = [f"{imp.path}:{imp.line}: from {imp.target} import *" for imp in graph.stars]
    assert not bad, "star imports:\n  " + "\n  ".join(bad)


def test_every_internal_import_names_an_existing_module(graph: ImportGraph) -> None:
    found = {(imp.importer, imp.target): imp for imp in graph.unresolved}
    new = [f"{imp.path}:{imp.line}: {imp.importer} imports {imp.target}, which does not exist"
           for key, imp in sorted(found.items()) if key not in KNOWN_UNRESOLVED]
    assert not new, "imports of missing modules:\n  " + "\n  ".join(new)
    stale = _stale(KNOWN_UNRESOLVED, set(found))
    assert not stale, f"fixed, remove from KNOWN_UNRESOLVED: {stale}"


# -- the checker checks itself ----------------------------------------------------

def test_cycle_finder_on_a_tiny_graph() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"],
             "g": []}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(graph, "a") == ["a", "b", "c", "a"]
    assert shortest_cycle(graph, "d") == ["d", "e", "d"]
    assert shortest_cycle(graph, "f") == []
    assert strongly_connected({"a": ["b"], "b": ["c"], "c": []}) == []


def test_package_graph_sees_a_circle_between_packages() -> None:
    def edge(a: str, b: str) -> Import:
        return Import(a, b, a.replace(".", "/") + ".py", 1)
    modules = {"p.x": {"q.y": edge("p.x", "q.y")}, "p.z": {"p.x": edge("p.z", "p.x")},
               "q.y": {}, "q.w": {"p.z": edge("q.w", "p.z")}}
    assert describe_cycles(modules) == []
    assert set(package_graph(modules)["p"]) == {"q"} and set(package_graph(modules)["q"]) == {"p"}
    assert describe_cycles(package_graph(modules)) == ["p (p/x.py:1) -> q (q/w.py:1) -> p"]


def test_rules_catch_planted_violations(tmp_path: Path) -> None:
    """A synthetic package with one of each violation: every rule must see its own."""
    pkg = tmp_path / "toy"
    (pkg / "stage").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "top.py": "",
        "runner.py": "def run():\n    from toy.stage import a\n    return a\n",
        "stage/__init__.py": "from toy.stage.a import *\n",
        "stage/a.py": ("from typing import TYPE_CHECKING\n"
                       "from toy.stage.b import _helper\n"
                       "if TYPE_CHECKING:\n    from toy import top\n"),
        "stage/b.py": ("import toy.stage.a as a_mod\n"
                       "from toy import top\n"
                       "X = a_mod._secret\n"
                       "def f():\n    from toy.gone import y\n"),
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text, encoding="utf-8")
    toy = read_graph(tmp_path, ["toy"])
    edges = toy.edges()
    assert set(edges["toy.runner"]) == {"toy.stage.a"}  # the lazy import counts
    assert set(edges["toy.stage.a"]) == {"toy.stage.b"}  # TYPE_CHECKING does not
    assert describe_cycles(edges) == [
        "toy.stage.a (toy/stage/a.py:2) -> toy.stage.b (toy/stage/b.py:1) -> toy.stage.a"]
    assert describe_cycles(without(edges, frozenset({("toy.stage.b", "toy.stage.a")}))) == []
    assert sorted((u.importer, u.module, u.name, u.line) for u in toy.private) == [
        ("toy.stage.a", "toy.stage.b", "_helper", 2),
        ("toy.stage.b", "toy.stage.a", "_secret", 3)]
    assert [(s.importer, s.target) for s in toy.stars] == [("toy.stage", "toy.stage.a")]
    assert set(upward_imports(toy, ["toy.stage"], ["toy.top", "toy.runner"])) == {
        ("toy.stage.b", "toy.top")}
    assert [(i.importer, i.target) for i in foreign_imports(toy, "toy.top", ["toy.runner"])] == [
        ("toy.stage.b", "toy.top")]
    assert foreign_imports(toy, "toy.top", ["toy.stage.b"]) == []
    assert [(i.importer, i.target, i.line) for i in toy.unresolved] == [
        ("toy.stage.b", "toy.gone", 5)]
