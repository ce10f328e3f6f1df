"""Who imports whom: the domain is pure, and commands that run no flow stay Prefect-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_DOMAIN = ("prefect", "sqlalchemy", "sqlmodel", "fastapi", "typer")
# The domain may read boundary schemas (pydantic), never tables.
FORBIDDEN_MODULES = ("models.tables", "models.types")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_no_infrastructure() -> None:
    offenders = []
    for path in sorted((ROOT / "relais" / "domain").glob("*.py")):
        for module in _imported_modules(path):
            if module.split(".")[0] in FORBIDDEN_IN_DOMAIN or module in FORBIDDEN_MODULES:
                offenders.append(f"{path.name}: {module}")
    assert offenders == []


def test_core_and_models_import_no_prefect() -> None:
    offenders = []
    for package in ("relais", "models"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in _imported_modules(path):
                if module.split(".")[0] in ("prefect", "flows", "tasks"):
                    # Entry points may import flows lazily, inside the function that runs them.
                    tree = ast.parse(path.read_text(encoding="utf-8"))
                    top_level = {
                        n.module if isinstance(n, ast.ImportFrom) else cast(ast.alias, a).name
                        for n in tree.body
                        if isinstance(n, ast.Import | ast.ImportFrom)
                        for a in (n.names if isinstance(n, ast.Import) else [n])
                    }
                    if module in top_level:
                        offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_cli_without_flows_does_not_load_prefect(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from relais.cli.main import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('prefect' in sys.modules)\n"
    )
    env = {"RELAIS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"
