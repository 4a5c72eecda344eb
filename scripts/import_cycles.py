"""Import cycles: the package has none, the imports made only for type
annotations (under ``TYPE_CHECKING``) counted.

Exit 1 and print each cycle found (its modules and the imports that close it)."""

from __future__ import annotations

import sys

import grimp


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    members = set(component)
    lines = [f"  {len(component)} modules: {', '.join(component)}"]
    for module in component:
        imported = sorted(m for m in graph.find_modules_directly_imported_by(module) if m in members)
        lines.append(f"    {module} -> {', '.join(imported)}")
    return "\n".join(lines)


def main() -> int:
    at_run_time = cycles(grimp.build_graph("conveyor", exclude_type_checking_imports=True, cache_dir=None))
    graph = grimp.build_graph("conveyor", cache_dir=None)
    found = cycles(graph)
    for component in found:
        when = "at run time" if component in at_run_time else "in type annotations"
        print(f"error: an import cycle {when}:\n{describe(graph, component)}", file=sys.stderr)
    print(f"import cycles: {len(found)} ({len(at_run_time)} at run time)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
