"""The layering the design promises, checked on the source: surfaces translate, the core
decides and reaches storage (issue 18)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ROOT / "bot" / "adapters"
FORBIDDEN_IN_ADAPTERS = ("storage", "sqlmodel", "sqlalchemy")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_adapter_imports_storage() -> None:
    offenders = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted(ADAPTERS.glob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_IN_ADAPTERS
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from storage import approvals\n    import sqlmodel\n")
    assert imported_modules(sample) == {"storage", "sqlmodel"}


def test_adapters_use_no_mixins_of_each_other() -> None:
    """Composition: no adapter class inherits from another module's handler class."""
    bases: list[str] = []
    for path in sorted(ADAPTERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases += [
                    f"{path.name}:{node.name}({ast.unparse(b)})"
                    for b in node.bases
                    if ast.unparse(b).endswith(("Base", "Handlers"))
                ]
    assert not bases, bases


def test_no_private_names_imported_from_other_modules() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}"
        for package in ("bot", "tools", "storage", "benchmarks", "tests")
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__"
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not offenders, offenders
