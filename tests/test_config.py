"""Configuration: the defaults file spells out the code's defaults; errors name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from mmplan.config import Config, load_config
from mmplan.errors import ConfigError, InputFileError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.toml"


def test_default_toml_equals_code_defaults():
    assert load_config(DEFAULT) == Config()


def test_default_toml_spells_out_every_key_with_a_comment():
    keys: dict[str, dict[str, bool]] = {}  # section -> key -> has a comment
    section = ""
    for line in DEFAULT.read_text().splitlines():
        if match := re.match(r"^\[([\w.]+)\]", line):
            section = match.group(1)
            keys.setdefault(section, {})
        elif match := re.match(r"^#?\s*(\w+)\s*=(.*)$", line):
            keys[section][match.group(1)] = line.startswith("#") or "#" in match.group(2)
    for name, field in Config.model_fields.items():
        for key in field.annotation.model_fields:
            if f"{name}.{key}" in keys:  # a table of its own, e.g. [forecast.events]
                continue
            assert key in keys[name], f"configs/default.toml lacks [{name}] {key}"
            assert keys[name][key], f"[{name}] {key} has no comment in configs/default.toml"


# configs/scenarios.toml is a scenario file (optimize --scenarios), not a config.
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.toml") if p.name != "scenarios.toml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    load_config(path)
    assert tomllib.loads(path.read_text())


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[forecast]\nhorizn = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(cfg) in str(err.value) and "forecast.horizn" in str(err.value)
    assert "horizon" in str(err.value)


def test_wrong_type_names_key_and_value(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[forecast]\nhorizon = "soon"\n')
    with pytest.raises(ConfigError, match="forecast.horizon"):
        load_config(cfg)


@pytest.mark.parametrize(
    "body",
    [
        "[forecast]\nhorizon = 0\n",
        "[forecast]\nhorizon = -3\n",
        "[forecast]\nlevels = [120]\n",
        "[forecast]\nlevels = []\n",  # no interval at all crashed reconciliation
        "[forecast]\nmodel = 'Prophet'\n",
        "[forecast\n",
        "[unknown]\nx = 1\n",
    ],
)
def test_bad_values_are_config_errors(tmp_path, body):
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError):
        load_config(cfg)


def test_missing_config_file_is_input_error(tmp_path):
    with pytest.raises(InputFileError):
        load_config(tmp_path / "nope.toml")


def test_overrides_apply_and_none_is_ignored(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[forecast]\nhorizon = 10\n")
    assert load_config(cfg, forecast={"horizon": None}).forecast.horizon == 10
    assert load_config(cfg, forecast={"horizon": 3}).forecast.horizon == 3


def test_custom_events_merge_with_the_default_calendar(tmp_path):
    # One custom event used to drop Prime Day, Black Friday, Cyber Monday and Christmas.
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[forecast.events]\npromo = [2025-03-03]\nchristmas = [2025-12-24]\nprime_day = []\n"
    )
    events = load_config(cfg).forecast.events
    assert sorted(events) == ["black_friday", "christmas", "cyber_monday", "promo"]
    assert [str(d) for d in events["christmas"]] == ["2025-12-24"]
    assert events["black_friday"] == Config().forecast.events["black_friday"]


def test_default_events_false_keeps_only_the_listed_events(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[forecast]\ndefault_events = false\n[forecast.events]\npromo = [2025-03-03]\n")
    assert list(load_config(cfg).forecast.events) == ["promo"]
    cfg.write_text("[forecast]\ndefault_events = false\n")
    assert load_config(cfg).forecast.events == {}
