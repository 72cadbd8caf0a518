"""The Examples sections of the analysis modules run as doctests, and every public function
of those modules has one (the data they use is made in the example itself)."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

#: The analysis modules whose public functions all carry a runnable Examples section.
DOCUMENTED = ["density", "grid", "gistar", "neighbours", "cluster", "pointclusters", "repeats",
              "rank", "trends", "series", "emerging", "timeprofile", "evaluate",
              "displacement"]
#: Modules with some examples (run too).
ALSO_RUN = ["analysis", "validate", "patrol"]


@pytest.mark.parametrize("name", DOCUMENTED + ALSO_RUN)
def test_examples_run(name, capsys):
    module = importlib.import_module(f"hotspots.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"hotspots.{name} has no examples"
    assert result.failed == 0, capsys.readouterr().out


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_public_function_has_examples(name):
    module = importlib.import_module(f"hotspots.{name}")
    missing = [n for n, f in inspect.getmembers(module, inspect.isfunction)
               if not n.startswith("_") and f.__module__ == module.__name__
               and "Examples\n" not in (inspect.getdoc(f) or "")]
    assert not missing, f"hotspots.{name}: no Examples section in {missing}"
