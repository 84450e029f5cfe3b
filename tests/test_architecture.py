"""The architecture rules that a reviewer would otherwise check by hand: `core/` imports no service, workflow or
activity (even inside a function); `workflows/` imports no module that does I/O, and `activities/` only under
`workflow.unsafe.imports_passed_through()`, for the typed activity references."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_MODULES = ("core.db", "core.outbox", "core.signals", "core.excel", "core.pdf", "core.web", "core.worker",
              "services", "sqlalchemy", "psycopg", "aiosmtplib", "httpx", "openpyxl", "weasyprint")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, passed through the sandbox) of every import statement of `path`."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, passed: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = passed or (isinstance(child, ast.With) and "imports_passed_through" in ast.unparse(child.items[0]))
            if isinstance(child, ast.Import):
                found.extend((alias.name, passed) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, passed))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def _names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_service_workflow_or_activity(path: Path) -> None:
    bad = [m for m, _ in _imports(path) if _names(m, ("services", "workflows", "activities", "wiring"))]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", sorted((ROOT / "workflows").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_workflows_import_no_io_module(path: Path) -> None:
    imports = _imports(path)
    bad = [m for m, _ in imports if _names(m, IO_MODULES)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    outside = [m for m, passed in imports if _names(m, ("activities",)) and not passed]
    assert not outside, f"{path.relative_to(ROOT)} imports {outside} outside imports_passed_through()"
    if path.parent.name == "data":
        assert not [m for m, _ in imports if _names(m, ("activities", "temporalio"))], "data types only"


def test_the_rules_would_catch_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from services.campaigns import models\n"
                      "with workflow.unsafe.imports_passed_through():\n    from activities.mail import X\n"
                      "import activities.removals\n")
    assert _imports(sample) == [("services.campaigns", False), ("activities.mail", True),
                                ("activities.removals", False)]
