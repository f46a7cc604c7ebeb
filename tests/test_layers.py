"""The folders are the layers: the core imports no device, network or scheduling library, nor the outer layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "relaxd"
# layer -> module prefixes it must never import (at module level or inside a function)
FORBIDDEN = {
    "core": ("phue", "soco", "paho", "apscheduler", "requests", "amqtt", "relaxd.adapters", "relaxd.app", "relaxd.sim"),
    "adapters": ("relaxd.app", "relaxd.sim", "amqtt"),
    "sim": ("relaxd.adapters", "relaxd.app", "phue", "soco", "paho"),
}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_what_it_must_not(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, layer
    found = [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for path in files
        for name in imported_modules(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert found == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    import soco.snapshot\n    from paho.mqtt import client\n")
    assert imported_modules(sample) == ["soco.snapshot", "paho.mqtt"]


def test_no_module_is_much_longer_than_300_lines() -> None:
    long = {
        str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 340
    }
    assert long == {}
