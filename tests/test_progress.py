"""Progress bars: drawn on a terminal only, never with --json or into a pipe or file."""

import io
import json

from hotspots import progress
from hotspots.cli import main

from .conftest import SHARED

BURGLARY = SHARED / "policeuk" / "2024-08-metropolitan-street_tower-hamlets_burglary-only.csv"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_only_when_both_streams_are_terminals_and_not_json():
    tty, pipe = Terminal(), io.StringIO()
    assert progress.watched(stdout=tty, stderr=tty)
    assert not progress.watched(True, stdout=tty, stderr=tty)
    assert not progress.watched(stdout=pipe, stderr=tty)  # output piped to a file
    assert not progress.watched(stdout=tty, stderr=pipe)
    assert progress.bar(stdout=pipe, stderr=tty) is None
    bar = progress.bar(stdout=tty, stderr=tty)
    bar(0, 4, "reading")
    bar(1, 4, "too soon: not redrawn")
    bar(4, 4, "done")
    lines = tty.getvalue()
    assert lines.startswith("\r[" + " " * 30 + "] 0/4 reading")
    assert "too soon" not in lines
    assert lines.endswith("\r[" + "#" * 30 + "] 4/4 done" + " " * 56 + "\n")


def test_ingest_draws_on_a_terminal_and_is_quiet_with_json(tmp_path, monkeypatch, cache):
    runs = {}
    for flag in ("", "--json"):
        out, err = Terminal(), Terminal()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        store = tmp_path / f"s{flag}.sqlite"
        code = main(["--geodata", str(cache), "ingest", str(BURGLARY), "--store", str(store),
                     *([flag] if flag else [])])
        runs[flag] = code, out.getvalue(), err.getvalue()
    code, out, err = runs[""]
    assert code == 0 and "accepted" in out
    steps = [s for s in err.split("\r") if s]
    assert steps[0].startswith("[" + " " * 30 + "] 0/3 ") and "reading" in steps[0]
    assert steps[-1].startswith("[" + "#" * 30 + "] 3/3 done") and err.endswith("\n")
    code, out, err = runs["--json"]
    assert code == 0 and err == "" and json.loads(out)["files"][0]["accepted"] > 0
