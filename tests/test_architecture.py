"""Imports flow one way: front-ends -> outputs -> analysis -> geography -> ingest -> basics.
Analysis modules import neither folium nor streamlit and do no file I/O of their own."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "hotspots"
ANALYSIS = {"analysis", "assign", "summary", "grid", "density", "gistar", "neighbours",
            "cluster", "pointclusters", "synthetic", "synthetic_town", "synthetic_exports", "rank",
            "evaluate", "displacement", "forecast", "backtest", "repeats", "trends", "series",
            "emerging", "timeprofile", "patrol", "intervention", "changetests"}
OUTPUTS = {"maps", "export", "report", "placecard", "printmap"}
FRONT = {"cli", "jobs", "loads"}


def imports(module: str) -> set[str]:
    files = ([PKG / f"{module}.py"] if (PKG / f"{module}.py").exists()
             else sorted((PKG / module).glob("*.py")))  # a module split into a package
    assert files, module
    found = set()
    for f in files:
        # a relative import resolved against the file's own package: ``from . import x``
        # and, inside a subpackage, ``from .. import x`` / ``from ..x import y`` name
        # hotspots modules; ``from .sibling import y`` stays inside the module itself
        package = f.parent.relative_to(PKG.parent).parts
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = [*package[:len(package) - node.level + 1],
                         *(node.module.split(".") if node.module else [])]
                names = parts[1:2] or [a.name for a in node.names]
                if parts[:2] != ["hotspots", module]:
                    found.update(names)
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
    """Only the ``maps`` package (and ``schema``, which names the CRS) mentions WEB_CRS,
    in any module of the package's subpackages too."""
    for path in PKG.rglob("*.py"):
        if path.parent != PKG / "maps" and path != PKG / "schema.py":
            assert "WEB_CRS" not in path.read_text(), str(path.relative_to(PKG))


def _private_imports(path: Path) -> list[str]:
    """``from X import _name`` and ``module._name`` for a hotspots module: another
    module's private name, used across the module boundary. The modules of one
    subpackage (``ingest/``, ``store/``, ``export/``) are one unit behind its
    ``__init__``: ``from .sibling import _name`` inside it is allowed."""
    modules = {p.stem for p in PKG.rglob("*.py")} | {"hotspots", "common"}
    in_subpackage = path.parent != PKG and path.parent.parent == PKG
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and in_subpackage and node.level == 1:
            continue
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
              and node.value.id in modules):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


#: Another library's private names a module may use, and why (each is tested against the
#: library's public function: an upgrade that moves it fails that test).
ALLOWED_PRIVATE = {"hotspots/changetests.py": {"scipy.special._ufuncs"}}  # scipy.stats.binom's
# kernels without importing scipy.stats (tests/test_trends.py: equal to binom to the bit)


def test_no_module_uses_another_modules_private_names():
    root = PKG.parent
    paths = [*PKG.rglob("*.py"), *(root / "app_pages").glob("*.py"), root / "streamlit_app.py"]
    bad = {}
    for p in paths:
        name = str(p.relative_to(root))
        allowed = ALLOWED_PRIVATE.get(name, set())
        if found := [f for f in _private_imports(p) if f.split(" (")[0] not in allowed]:
            bad[name] = found
    assert not bad, f"private names used across modules (make them public or move them): {bad}"


def test_analysis_modules_take_constants_from_schema_not_ingest():
    for module in ANALYSIS:
        if (PKG / f"{module}.py").exists():
            assert "ingest" not in imports(module), f"{module} imports ingest"
