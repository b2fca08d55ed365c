"""The package's imports follow the layer order of docs/interfaces.md ("Layers") and form no circle.

Read statically with `ast` (nothing is imported), from every module of `w4s_jax` and of `configs/`
(shipped as `w4s_jax.configs`), imports inside functions included: a lazy import still ties the
layers together, it only hides the tie until the function runs.
"""

from __future__ import annotations

import ast
import graphlib
import pathlib
import re

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "w4s_jax"
CONFIG_FILES = REPO_ROOT / "configs"
ROOT_LAYER = "w4s_jax"  # the layer of the top-level modules (data_errors.py, ...)


def layer_order() -> list[str]:
    """The packages of the "Layers" section of docs/interfaces.md, bottom first."""
    text = (REPO_ROOT / "docs" / "interfaces.md").read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([\w.]+)`", section, flags=re.MULTILINE)


def modules() -> dict[str, tuple[pathlib.Path, str]]:
    """Module name -> (file, layer): a top-level module is in the root layer, any other in its package's."""
    found = {}
    for base, prefix in ((PACKAGE, ("w4s_jax",)), (CONFIG_FILES, ("w4s_jax", "configs"))):
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join(prefix + parts[:-1] + (() if parts[-1] == "__init__" else parts[-1:]))
            layer = prefix[1] if len(prefix) > 1 else parts[0] if len(parts) > 1 else ROOT_LAYER
            found[name] = (path, layer)
    return found


def imported(name: str, path: pathlib.Path, known: dict) -> set[str]:
    """The package's modules that `name` imports anywhere in its source (a name imported from a package
    counts as its submodule when it is one, else as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `.` is this module's package, each further dot one package up
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    out = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, (path, _) in known.items()}


def test_layer_order_names_every_package():
    layers = {layer for _, layer in modules().values()}
    assert sorted(layer_order()) == sorted(layers), "docs/interfaces.md 'Layers' must list each package once"


def test_no_import_runs_upward():
    known = modules()
    rank = {layer: position for position, layer in enumerate(layer_order())}
    upward = [
        f"{name} ({known[name][1]}) imports {target} ({known[target][1]})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if rank[known[target][1]] > rank[known[name][1]]
    ]
    assert not upward, "imports against the layer order of docs/interfaces.md:\n" + "\n".join(upward)


def test_no_import_circles():
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None
