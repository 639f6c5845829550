"""Import direction: the engine never imports a method, the leaf packages never import the
engine, and no two modules import each other (not even from inside a function), the methods
(``policies``) included; an import inside a function names the heavy or optional module it
defers and says why.

``dtsim_errors`` (the refusal that names its field, ``FieldError``) sits below every layer:
it imports nothing of the project, and every package may import it.

Imports under ``if TYPE_CHECKING:`` are type-only and not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sim", "topologies", "workloads", "policies", "dtsim_errors")
PROJECT = ("sim", "topologies", "workloads", "policies", "dtsim_errors")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports at run time (top level or in a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            out |= submodules
            if len(submodules) < len(node.names):
                out.add(node.module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _runtime_imports(path, known) for name, path in modules.items()}


def test_the_engine_and_leaf_packages_never_import_a_policy():
    offenders = {name: sorted(i for i in imports if i.split(".")[0] == "policies")
                 for name, imports in _graph().items() if name.split(".")[0] != "policies"}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_topologies_and_workloads_never_import_the_engine():
    offenders = {name: sorted(i for i in imports if i.split(".")[0] == "sim")
                 for name, imports in _graph().items()
                 if name.split(".")[0] not in ("sim", "policies")}
    assert {k: v for k, v in offenders.items() if v} == {}


#: What a function may import instead of its module's top, and why: each is heavy or optional,
#: and ``import sim`` (the CLI, ``dtsim list``, a scenario check) does not need it. The methods
#: (``policies``) import torch at their top already, so they have nothing to defer but the
#: plotting and optional modules.
DEFERRED = {
    "torch": "heavy (seconds to import); only a run that trains needs it",
    "workloads": "its package imports torch",
    "matplotlib": "heavy; only writing a plot needs it",
    "sim.plots": "imports matplotlib",
    "ray": "optional extra [ray]",
    "pyarrow": "optional: only Parquet output needs it",
    "scipy": "heavy; only workload calibration needs it",
    "sklearn": "heavy; only the digits data set needs it",
}


def _function_imports(path: Path) -> list[tuple[int, str, str]]:
    """``(line, imported module, source line)`` of each import inside a function body."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    out = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            else:
                continue
            out += [(node.lineno, m, lines[node.lineno - 1]) for m in modules]
    return out


def test_imports_sit_at_module_top_unless_deferred_for_a_stated_reason():
    """Imports inside functions hide the dependency graph; only heavy or optional modules
    (DEFERRED) may be imported there, each with a ``# deferred: <why>`` comment at the site."""
    offenders = []
    for name, path in _modules().items():
        for line, module, source in _function_imports(path):
            allowed = any(module == d or module.startswith(f"{d}.") for d in DEFERRED)
            if not allowed or "# deferred:" not in source:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {source.strip()}")
    assert offenders == []


def test_the_error_package_imports_nothing_of_the_project():
    graph = _graph()
    leaf = {name: sorted(i for i in imports if i.split(".")[0] in PROJECT)
            for name, imports in graph.items() if name.split(".")[0] == "dtsim_errors"}
    assert leaf == {"dtsim_errors": []}


def test_the_leaf_packages_raise_the_shared_field_error():
    """workloads' Config refuses with the one FieldError the engine reads (no second class)."""
    import dtsim_errors
    import sim.errors
    import workloads.config

    assert sim.errors.FieldError is dtsim_errors.FieldError
    assert "dtsim_errors" in _graph()["workloads.config"]
    assert issubclass(sim.errors.ScenarioError, dtsim_errors.FieldRefusal)
    assert not issubclass(sim.errors.ScenarioError, dtsim_errors.FieldError)
    assert workloads.config.FieldError is dtsim_errors.FieldError


def test_no_import_cycles():
    graph = _graph()
    internal = {name: sorted(i for i in imports if i in graph and i != name)
                for name, imports in graph.items()}
    cycles = []
    state: dict[str, int] = {}        # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in internal[node]:
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(internal):
        if name not in state:
            visit(name, [name])
    assert cycles == []
