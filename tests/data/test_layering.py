"""data/ holds the on-disk formats and their readers; capture/ writes sessions through data/session.py. The
dependency runs one way: nothing in data/ imports capture/."""

import ast
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "socketedge" / "data"


def test_nothing_in_data_imports_capture():
    offenders = []
    for path in sorted(DATA.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(DATA)}:{node.lineno} {n}" for n in names
                          if n == "socketedge.capture" or n.startswith("socketedge.capture.")]
    assert not offenders, offenders
