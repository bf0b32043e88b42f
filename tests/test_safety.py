"""Nothing executes from data: inputs are Parquet and TOML only, never pickle or eval."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmplan"
FORBIDDEN = re.compile(
    r"\b(pickle|cloudpickle|dill|marshal|shelve)\b|\beval\(|\bexec\(|"
    r"read_pickle|allow_pickle\s*=\s*True|yaml\.load\("
)


def test_no_code_path_deserialises_or_evaluates_input():
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN.search(line.split("#")[0]):
                hits.append(f"{path.name}:{number}: {line.strip()}")
    assert hits == []


def test_configs_are_read_with_tomllib_only():
    config = (PACKAGE / "config.py").read_text()
    assert "tomllib.loads" in config
    assert "json.load" not in config and "yaml" not in config
