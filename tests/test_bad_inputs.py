"""The bad-input corpus: every malformed input gets its exit code, a message, no traceback,
and no output. Cases live in tests/data/bad/expected.toml, one per file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mmplan.cli import app

DATA = Path(__file__).parent / "data"
GOOD, BAD = DATA / "good", DATA / "bad"
CASES = tomllib.loads((BAD / "expected.toml").read_text())
FAST = '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nn_jobs = 1\n'
runner = CliRunner()


def test_every_file_in_the_corpus_has_an_expected_code():
    files = {p.name for p in BAD.iterdir() if p.name != "expected.toml"}
    listed = {name for name, case in CASES.items() if case["role"] != "output"}
    assert files == listed
    assert len(CASES) >= 30


def _command(name: str, role: str, tmp: Path) -> tuple[list[str], Path]:
    fast = tmp / "fast.toml"
    fast.write_text(FAST)
    path = str(BAD / name)
    if role in ("history", "config", "output"):
        out = (
            (tmp / name if not name.startswith("/") else Path(name))
            if role == "output"
            else (tmp / "forecast.parquet")
        )
        history = path if role == "history" else str(GOOD / "history.parquet")
        config = path if role == "config" else str(fast)
        return ["forecast", history, "-o", str(out), "--config", config], out
    inputs = {r: str(GOOD / f"{r}.parquet") for r in ("demand", "nodes", "lanes")}
    args = []
    if role in inputs:
        inputs[role] = path
    else:  # optimize-config
        args = ["--config", path]
    out = tmp / "plan"
    return [
        "optimize",
        inputs["demand"],
        "--nodes",
        inputs["nodes"],
        "--lanes",
        inputs["lanes"],
        "-o",
        str(out),
        *args,
    ], out


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path):
    case = CASES[name]
    args, out = _command(name, case["role"], tmp_path)
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == case["code"], text
    assert "Traceback" not in result.output
    if case["code"] == 0:
        ids = " ".join(pq.read_table(out, columns=["unique_id"]).column(0).to_pylist())
        assert case["message"] in text + " " + ids
    else:
        assert case["message"] in text
        assert not out.exists()
        leftovers = (
            [
                p.name
                for p in out.parent.glob(f".{out.name}*")
                if not p.name.endswith((".lock", ".holder"))
            ]
            if out.parent.is_dir()
            else []
        )
        assert leftovers == []
