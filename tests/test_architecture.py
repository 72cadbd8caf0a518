"""Imports flow one way: front-ends -> outputs -> analysis -> geography -> ingest -> basics.
Analysis modules import neither folium nor streamlit and do no file I/O of their own."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "hotspots"
ANALYSIS = {"assign", "summary", "grid", "density", "gistar", "cluster", "synthetic", "rank",
            "evaluate", "forecast",
            "repeats", "trends", "patrol", "intervention"}
OUTPUTS = {"maps", "export", "report", "placecard"}
FRONT = {"cli", "jobs"}


def imports(module: str) -> set[str]:
    tree = ast.parse((PKG / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found


def test_analysis_modules_do_not_import_front_ends_outputs_or_web_libraries():
    for module in ANALYSIS:
        if not (PKG / f"{module}.py").exists():
            continue
        bad = imports(module) & (FRONT | OUTPUTS | {"folium", "streamlit", "store", "branca"})
        assert not bad, f"{module} imports {bad}"


def test_outputs_do_not_import_front_ends():
    for module in OUTPUTS:
        assert not imports(module) & FRONT


def test_only_maps_converts_to_web_coordinates():
    for path in PKG.glob("*.py"):
        if path.stem not in ("maps", "schema"):
            assert "WEB_CRS" not in path.read_text(), path.name
