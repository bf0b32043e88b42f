"""The scenario file of `mmplan optimize --scenarios FILE.toml`: named scenarios, each a
list of changes to demand and network (worked example: configs/scenarios.toml).

Like the config, it is read with tomllib into pydantic models that reject unknown keys: a
bad key or type is a ConfigError (78) naming the scenario, the change and the key. Whether
a change names facilities, lanes and columns the data has is checked by
mmplan.plan.scenarios against the data (65).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from mmplan.config import FleetConfig, Section
from mmplan.errors import ConfigError, InputFileError

__all__ = [
    "AddLane",
    "CapacityChange",
    "Change",
    "DemandChange",
    "FacilityDown",
    "LaneChange",
    "RemoveLane",
    "ScenarioDef",
    "ScenarioFile",
    "load_scenarios",
]


class _Change(Section):
    """A scenario change; applies on start..end (inclusive; unset: from / to every date)."""

    start: dt.date | None = None
    end: dt.date | None = None


class DemandChange(_Change):
    """Demand rows matching every key given (all rows when none) times `multiply`, plus
    `add` packages per row and date (never below zero). Naming one pair (`lane`, or
    `origin` and `destination`), `add` also creates it on dates it has no demand."""

    type: Literal["demand"]
    multiply: float = Field(default=1.0, ge=0)
    add: float = 0.0
    origin: str | None = None
    destination: str | None = None
    region: str | None = None  # the destination's region
    lane: str | None = Field(default=None, pattern=r"^[^>]+->[^>]+$")  # "FC01->DS004"


class FacilityDown(_Change):
    """The facility carries nothing: its lanes close, its own volume is closed-facility volume."""

    type: Literal["facility_down"]
    facility: str


class CapacityChange(_Change):
    """A facility's daily capacity set to `capacity`, or its capacity times `multiply`."""

    type: Literal["capacity"]
    facility: str
    capacity: float | None = Field(default=None, ge=0)
    multiply: float | None = Field(default=None, ge=0)


class RemoveLane(_Change):
    type: Literal["remove_lane"]
    origin: str
    destination: str


class AddLane(_Change):
    type: Literal["add_lane"]
    origin: str
    destination: str
    truck_capacity: float = Field(gt=0)
    cost_per_truck: float = Field(ge=0, le=1e9)
    cost_per_package: float = Field(default=0.0, ge=0, le=1e9)
    max_trucks: int | None = Field(default=None, ge=0)


class LaneChange(_Change):
    """A lane's truck capacity, costs or truck cap set to new values."""

    type: Literal["lane"]
    origin: str
    destination: str
    truck_capacity: float | None = Field(default=None, gt=0)
    cost_per_truck: float | None = Field(default=None, ge=0, le=1e9)
    cost_per_package: float | None = Field(default=None, ge=0, le=1e9)
    max_trucks: int | None = Field(default=None, ge=0)


Change = Annotated[
    DemandChange | FacilityDown | CapacityChange | RemoveLane | AddLane | LaneChange,
    Field(discriminator="type"),
]


class ScenarioDef(Section):
    """One scenario: a demand column, a fleet budget and changes to demand and network."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    column: str | None = None  # plan this demand column instead of the base one (hi_80)
    fleet: FleetConfig | None = None  # instead of [optimize.fleet]
    change: list[Change] = Field(default_factory=list)


class ScenarioFile(Section):
    """A scenario file: `[[scenario]]` tables, each with `[[scenario.change]]` tables."""

    scenario: list[ScenarioDef] = Field(min_length=1)

    @field_validator("scenario")
    @classmethod
    def _names_distinct(cls, value: list[ScenarioDef]) -> list[ScenarioDef]:
        names = [s.name for s in value]
        if "base" in names:
            raise ValueError("'base' is the plan without changes; name the scenario otherwise")
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be distinct: {names}")
        return value


def _scenario_key(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str:
    """Where a scenario file's error is: scenario name, change number and type, key."""
    parts = []
    rest = list(loc)
    if rest[:1] == ["scenario"] and len(rest) > 1 and isinstance(rest[1], int):
        raw = data.get("scenario", [])
        entry = raw[rest[1]] if rest[1] < len(raw) and isinstance(raw[rest[1]], dict) else {}
        parts.append(f"scenario '{entry.get('name', rest[1] + 1)}'")
        rest = rest[2:]
        if rest[:1] == ["change"] and len(rest) > 1 and isinstance(rest[1], int):
            changes = entry.get("change", [])
            change = changes[rest[1]] if rest[1] < len(changes) else {}
            kind = change.get("type", "?") if isinstance(change, dict) else "?"
            parts.append(f"change {rest[1] + 1} ({kind})")
            rest = rest[2:]
            if rest and rest[0] == kind:
                rest = rest[1:]
    if rest:
        parts.append(f"key '{'.'.join(str(p) for p in rest)}'")
    return ", ".join(parts)


def load_scenarios(path: str | Path) -> ScenarioFile:
    """Read a scenario file (TOML): an unknown key or a wrong type is a ConfigError (78)
    naming the scenario, the change and the key."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"scenario file not found: {p}. Check the --scenarios path.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file; scenario files are TOML.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}). Fix the syntax.") from None
    try:
        return ScenarioFile.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            where = _scenario_key(tuple(e["loc"]), data)
            what = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(f"{where}: {what} (given {e.get('input')!r})")
        raise ConfigError(
            f"{p}: bad scenario file: " + "; ".join(problems) + ". See configs/scenarios.toml."
        ) from None
