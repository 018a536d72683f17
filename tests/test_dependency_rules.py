"""The dependency rules of docs/architecture.md ("Dependency rules"), read from the source.

Every `import` and `from ... import` in the package counts, wherever it is: at the top,
under `if TYPE_CHECKING:`, or inside a function (a deferred import is still a
dependency; it only loads later). The file-op server's allow-list of handler modules
(module names it imports when a request needs them) does not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ocibuild

PACKAGE_DIR = Path(ocibuild.__file__).parent
ROOT = "ocibuild"

# Modules that import no other module of the package but each other: anything may use them.
LEAVES = frozenset({
    "ocibuild.errors", "ocibuild.atomic", "ocibuild.deferred", "ocibuild.idmap",
    "ocibuild.chmod", "ocibuild.store_paths", "ocibuild.interrupt", "ocibuild.dockerignore",
    "ocibuild.reference", "ocibuild.idspace.requests",
    "ocibuild.source_location", "ocibuild.progress.events", "ocibuild.progress.transfer",
    "ocibuild.forked_call", "ocibuild.threads", "ocibuild.unixsocket", "ocibuild.oci.digest",
})
# Packages of the engine: none of them imports the package root (its lazy public API).
ENGINE = ("oci", "graph", "frontend", "solver", "snapshot", "sandbox", "idspace", "cache",
          "exporter", "registry", "sources", "progress", "rootfs", "attest")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (a package's __init__ is the package's name)
    line: int
    at_load: bool  # run when the source module is loaded (top level or TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _statements(body: list[ast.stmt], at_load: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement, with whether it runs when the module loads."""
    for node in body:
        yield node, at_load
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, [])
            if field == "handlers":
                children = [s for h in children for s in h.body]
            inside_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from _statements(children, at_load and not inside_function)


def _targets(source: str, node: ast.stmt) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the source's package
            base = source.split(".")
            if MODULES[source].name != "__init__.py":
                base.pop()
            base = base[:len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:  # `from pkg import module` imports that module
            submodule = f"{module}.{alias.name}"
            yield submodule if submodule in MODULES else module


def _imports() -> list[Import]:
    found = []
    for source, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, at_load in _statements(tree.body, True):
            for target in _targets(source, node):
                if target in MODULES and target != source:
                    found.append(Import(source, target, node.lineno, at_load))
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m


IMPORTS = _imports()


def _in(module: str, *packages: str) -> bool:
    return any(module == f"{ROOT}.{p}" or module.startswith(f"{ROOT}.{p}.") for p in packages)


def _breaks(source_packages: tuple[str, ...], allowed: object) -> list[str]:
    return [str(i) for i in IMPORTS
            if _in(i.source, *source_packages) and not allowed(i.target)]  # type: ignore[operator]


def test_leaves_import_only_leaves() -> None:
    assert [str(i) for i in IMPORTS if i.source in LEAVES and i.target not in LEAVES] == []


def test_oci_imports_nothing_above_it() -> None:
    assert _breaks(("oci",), lambda t: _in(t, "oci") or t in LEAVES) == []


def test_graph_imports_only_oci_and_leaves() -> None:
    assert _breaks(("graph",), lambda t: _in(t, "graph", "oci") or t in LEAVES) == []


def test_attest_reads_only_images_and_the_graph() -> None:
    """Attestations are made from a layout's blobs and the build graph's ops (plus the git
    URL helper that removes credentials): never from the solver, store or outputs."""
    assert _breaks(("attest",), lambda t: _in(t, "attest", "oci", "graph") or t in LEAVES
                   or t == "ocibuild.sources.git_url") == []


def test_solver_never_imports_a_frontend() -> None:
    assert _breaks(("solver",), lambda t: not _in(t, "frontend")) == []


def test_cache_exporters_and_registry_never_import_snapshot_or_sandbox() -> None:
    assert _breaks(("cache", "exporter", "registry"),
                   lambda t: not _in(t, "snapshot", "sandbox")) == []


def test_registry_knows_nothing_of_cache_snapshots_sandbox_or_solver() -> None:
    assert _breaks(("registry",),
                   lambda t: not _in(t, "cache", "snapshot", "sandbox", "solver",
                                     "signing")) == []


def test_signing_sits_on_the_registry_client_only() -> None:
    """Signatures use the registry client and oci; never the cache, the solver, the
    builder or the CLI (the cache and the builder use them)."""
    assert _breaks(("signing",), lambda t: _in(t, "signing", "registry", "oci")
                   or t in LEAVES) == []


def test_idspace_is_below_snapshot_cache_and_exporters() -> None:
    """It may start a helper through the sandbox's launcher, become the sandbox's fork
    server (the file-op server forks it) and make a private temporary directory in the
    store; nothing else."""
    allowed = {"ocibuild.sandbox", "ocibuild.sandbox.idmapping", "ocibuild.sandbox.linux",
               "ocibuild.sandbox.zygote", "ocibuild.cache.temporaries"}
    assert _breaks(("idspace",),
                   lambda t: _in(t, "idspace") or t in LEAVES or t in allowed) == []


def test_the_engine_never_imports_the_package_root() -> None:
    assert _breaks(ENGINE, lambda t: t != ROOT) == []


def _cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in edges:
        graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycle_edges(edges: list[Import]) -> list[str]:
    """The imports that close a cycle, grouped by cycle."""
    return [str(i) for component in _cycles(edges)
            for i in edges if i.source in component and i.target in component]


def test_no_cycles_when_modules_load() -> None:
    """Across the whole package, counting the imports run at load (and type-only ones)."""
    assert _cycle_edges([i for i in IMPORTS if i.at_load]) == []


def test_no_cycles_inside_a_package() -> None:
    """Inside one package, deferred imports count too: two modules that need each other
    are one module, or share a third."""
    assert _cycle_edges([i for i in IMPORTS if _package(i.source) == _package(i.target)]) == []
