"""Architecture rules that a test can check (#21): no module imports another module's private names.

A private name (``_name``) is its module's business; code elsewhere asks the object or module for a
public function instead. Private *modules* (``soundanomaly._safeio``) are package-internal and may be imported.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import soundanomaly

SOURCE = Path(soundanomaly.__file__).parent

#: Known violations left in other areas (owner: the helper who owns the file); this set may only shrink.
KNOWN: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def private_imports() -> set[tuple[str, str]]:
    """``(importing module, imported private name)`` for every ``from x import _y`` and ``module._y`` across modules."""
    found = set()
    for path in sorted(SOURCE.rglob("*.py")):
        here = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: dict[str, str] = {}  # local alias -> soundanomaly module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("soundanomaly"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if _is_module(target):
                        modules[alias.asname or alias.name] = target
                    elif alias.name.startswith("_") and not alias.name.startswith("__") and node.module != here:
                        found.add((here, target))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("soundanomaly") and alias.asname:
                        modules[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and modules[node.value.id] != here
                and not _is_module(f"{modules[node.value.id]}.{node.attr}")
            ):
                found.add((here, f"{modules[node.value.id]}.{node.attr}"))
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = private_imports()
    assert found - KNOWN == set(), sorted(found - KNOWN)
    assert KNOWN - found == set(), f"fixed: remove {sorted(KNOWN - found)} from KNOWN"
