"""The dependency rules of the architecture brief (§2), enforced: collector/ and central/
stand in for vendors' products and share with the harness only the published contracts (the
register profiles as data, the uplink schemas, the platform API), so they never import the
world, the devices, the harness, the reports — nor each other. reports/ reads only the run
record. contracts/ holds the published contracts as data, importable by all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("sim", "devices", "scenarios", "acceptance", "reports", "collector", "central",
        "contracts", "mutants")
ALLOWED = {
    "collector": {"collector", "contracts"},
    "central": {"central", "contracts"},
    "contracts": set(),  # data and their locations only
    # broken products for QA: they reach into the products, never the reverse
    "mutants": {"mutants", "collector", "central", "contracts"},
    "sim": {"sim"},
    "devices": {"devices", "sim", "contracts"},
    "scenarios": {"scenarios"},
    "reports": {"reports", "acceptance.record"},
}


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_architecture_allows(package):
    allowed = ALLOWED[package]
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            if module.split(".")[0] not in OURS:
                continue
            if not any(module == a or module.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not bad, "\n".join(bad)
