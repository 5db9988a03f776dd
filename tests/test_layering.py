"""The package's import graph follows its layout (house rules: "Layout tells the pipeline", no import cycles).

Every `vqvideo/**/*.py` is parsed with `ast`; every import counts, at module level or inside a function (a lazy
import is still a dependency). A unit is a subpackage (`models`, `lit`, ...) or a top-level module (`files`,
`commands`, ...). Tools are the modules `vqvideo/cli.py` runs (its TOOLS dict) and `cli.py` itself: entry points,
imported only by the few modules that run them, each in one of the two places commands live and in one style.
Failures name every offending import as file:line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vqvideo"
LIGHTNING = ("pytorch_lightning", "lightning")
TOOL_RUNNERS = {"vqvideo.cli", "vqvideo.commands.demo"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "vqvideo.lit.prior_module"
    target: str  # imported module (a vqvideo submodule when one is named, else what was written)
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(source: str, node: ast.ImportFrom) -> list[str]:
    """Modules an ImportFrom names (`from vqvideo.commands import predict`: vqvideo.commands.predict), relative
    imports resolved."""
    if node.level:
        is_package = MODULES[source].name == "__init__.py"
        base = source.split(".")[: len(source.split(".")) - node.level + (1 if is_package else 0)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
    return submodules or [module]


def imports_of(source: str) -> list[Import]:
    path = MODULES[source]
    tree = ast.parse(path.read_text(), filename=str(path))
    where = lambda node: f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"  # noqa: E731
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(source, alias.name, where(node)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found += [Import(source, target, where(node)) for target in resolve(source, node)]
    return found


ALL_IMPORTS = [found for source in MODULES for found in imports_of(source)]


def tool_modules() -> set[str]:
    """The modules `vqvideo <tool>` runs (vqvideo/cli.py's TOOLS dict, read from its source) and cli.py itself."""
    tree = ast.parse(MODULES["vqvideo.cli"].read_text())
    tools = next(
        node.value for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TOOLS" for t in node.targets)
    )  # fmt: skip
    return {ast.literal_eval(value) for value in tools.values} | {"vqvideo.cli"}


TOOLS = tool_modules()


def unit(module: str) -> str | None:
    """"models" for vqvideo.models.x, "files" for vqvideo.files; None outside vqvideo (or the package root)."""
    parts = module.split(".")
    if parts[0] != "vqvideo" or len(parts) == 1:
        return None
    return parts[1]


def is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(sources: str, forbidden: tuple[str, ...]) -> list[Import]:
    """Imports from modules under `sources` of modules under any of `forbidden` (module prefixes)."""
    return [found for found in ALL_IMPORTS
            if is_under(found.source, sources) and any(is_under(found.target, f) for f in forbidden)]


def report(found: list[Import]) -> str:
    return "\n".join(str(item) for item in found)


def test_the_scan_sees_the_package():
    """Guards the rules below against passing vacuously (e.g. a moved package, a parser that finds nothing)."""
    assert {"vqvideo.models.pixelcnn", "vqvideo.lit.prior_module", "vqvideo.sampling.cached"} <= MODULES.keys()
    assert {"vqvideo.commands.predict", "vqvideo.commands.precompute", "vqvideo.commands.describe",
            "vqvideo.commands.demo", "vqvideo.evaluation.command", "vqvideo.cli"} <= TOOLS
    targets = {(found.source, found.target) for found in ALL_IMPORTS}
    assert ("vqvideo.sampling.cached", "vqvideo.models.pixelcnn") in targets  # module level
    assert ("vqvideo.human_eval.command", "vqvideo.human_eval.app") in targets  # inside a function
    assert ("vqvideo.lit.prior_module", "pytorch_lightning") in targets


def test_models_are_pure_torch():
    """models/ imports nothing of vqvideo outside models/, and never Lightning."""
    outside = [found for found in ALL_IMPORTS if is_under(found.source, "vqvideo.models")
               and is_under(found.target, "vqvideo") and not is_under(found.target, "vqvideo.models")]
    assert not outside, "models/ imports other vqvideo code:\n" + report(outside)
    lightning = violations("vqvideo.models", LIGHTNING)
    assert not lightning, "models/ imports Lightning:\n" + report(lightning)


LAYER_RULES = {
    "vqvideo.sampling": ("vqvideo.lit", "vqvideo.callbacks", "vqvideo.cache", "vqvideo.evaluation"),
    "vqvideo.metrics": ("vqvideo.lit", "vqvideo.evaluation") + LIGHTNING,
    "vqvideo.data": ("vqvideo.cache", "vqvideo.lit", "vqvideo.sampling", "vqvideo.callbacks", "vqvideo.evaluation"),
    "vqvideo.cache": ("vqvideo.lit", "vqvideo.callbacks", "vqvideo.sampling", "vqvideo.evaluation"),
    "vqvideo.lit": ("vqvideo.callbacks", "vqvideo.evaluation"),
    "vqvideo.callbacks": ("vqvideo.evaluation",),
}


@pytest.mark.parametrize("layer", LAYER_RULES, ids=lambda name: name.split(".")[1])
def test_layer_never_imports_what_builds_on_it(layer):
    found = violations(layer, LAYER_RULES[layer])
    assert not found, f"{layer} imports {LAYER_RULES[layer]}:\n" + report(found)


@pytest.mark.parametrize("layer", ["vqvideo.sampling", "vqvideo.lit", "vqvideo.metrics"],
                         ids=["sampling", "lit", "metrics"])
def test_library_layers_never_import_tools(layer):
    found = violations(layer, tuple(TOOLS))
    assert not found, f"{layer} imports a tool module:\n" + report(found)


def test_only_the_tool_runners_import_tools():
    found = [found for found in ALL_IMPORTS
             if found.target in TOOLS and found.target != found.source and found.source not in TOOL_RUNNERS]
    assert not found, f"only {sorted(TOOL_RUNNERS)} may import a tool module:\n" + report(found)


def test_commands_live_in_two_places_in_one_style():
    """The pipeline's tools in vqvideo/commands/, a feature's tool as its package's command.py; each defines
    build_parser() and main(argv); commands/ holds nothing else (library code lives in the library)."""
    tools = TOOLS - {"vqvideo.cli"}
    misplaced = [tool for tool in tools if not (is_under(tool, "vqvideo.commands") or tool.endswith(".command"))]
    assert not misplaced, f"tools outside vqvideo/commands/ and <feature>/command.py: {misplaced}"
    for tool in sorted(tools):
        defined = {node.name for node in ast.parse(MODULES[tool].read_text()).body if isinstance(node, ast.FunctionDef)}
        assert {"build_parser", "main"} <= defined, f"{MODULES[tool]} lacks build_parser() or main(argv)"
    extra = [module for module in MODULES if is_under(module, "vqvideo.commands") and module != "vqvideo.commands"
             and module not in tools]
    assert not extra, f"vqvideo/commands/ holds modules that are no command: {extra}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one node (= the import cycles)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(key) -> tuple[list[set[str]], dict[tuple[str, str], list[Import]]]:
    """Cycles of the graph whose nodes are key(module). Imports of tool modules are left out: tools are entry
    points that only their runners import (checked above)."""
    graph, edges = defaultdict(set), defaultdict(list)
    for found in ALL_IMPORTS:
        if found.target in TOOLS:
            continue
        source, target = key(found.source), key(found.target)
        if source and target and source != target and found.target in MODULES:
            graph[source].add(target)
            edges[source, target].append(found)
    return strongly_connected(graph), edges


def cycle_report(components, edges) -> str:
    lines = []
    for component in components:
        lines.append(f"cycle among {sorted(component)}:")
        lines += [f"  {item}" for (a, b), items in sorted(edges.items()) if a in component and b in component
                  for item in items]
    return "\n".join(lines)


def test_no_import_cycles_between_subpackages():
    components, edges = cycles(unit)
    assert not components, cycle_report(components, edges)


def test_no_import_cycles_between_modules():
    components, edges = cycles(lambda module: module if module in MODULES else None)
    assert not components, cycle_report(components, edges)
