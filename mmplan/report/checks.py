"""Checks across a report's inputs: are they about the same network?

A page that draws a forecast of one network beside a plan of another would be trusted and
wrong, so inputs that cannot belong together are a data error (exit 65) naming both files:

- a plan whose demand pairs (origin -> destination, served or not) are not lanes of the
  forecast, or whose dates the forecast does not cover;
- a forecast with lanes the history does not have;
- a simulation or promise table whose origin-destination pairs are not lanes of the
  forecast.

Inputs that belong together but were not made from each other (a plan made from an
earlier run of the forecast) are not errors: `notes` says so on the page.
"""

from __future__ import annotations

import polars as pl

from mmplan.errors import DataError
from mmplan.report.inputs import Loaded

__all__ = ["check_inputs", "notes", "scenario_plans"]


def _pairs(df: pl.DataFrame) -> set[tuple[str, str]]:
    return set(df.select("origin", "destination").unique().iter_rows())


def _forecast_lanes(forecast: Loaded) -> set[tuple[str, str]]:
    table = forecast.data.table
    lanes = table.filter(pl.col("level") == "lane")
    if not {"origin", "destination"} <= set(table.columns) or lanes.is_empty():
        raise DataError(
            f"{forecast.path}: the forecast has no lane rows with origin and destination, "
            "so it cannot be checked against the other inputs."
        )
    return _pairs(lanes)


def _listed(pairs: set[tuple[str, str]]) -> str:
    shown = ", ".join(f"{o}->{d}" for o, d in sorted(pairs)[:5])
    return shown + (f" and {len(pairs) - 5} more" if len(pairs) > 5 else "")


def _check_plan(forecast: Loaded, plan: Loaded) -> None:
    lanes = _forecast_lanes(forecast)
    data = plan.data
    demand = _pairs(data.flows) | _pairs(data.unserved)
    if strange := demand - lanes:
        raise DataError(
            f"{plan.path} and {forecast.path} are not from the same network: the plan "
            f"carries demand for {len(strange)} origin-destination pairs that are not lanes "
            f"of the forecast ({_listed(strange)}). Give the forecast the plan was made from."
        )
    dates = set(forecast.data.table.get_column("date").unique().to_list())
    plan_dates = set(data.trucks.get_column("date").unique().to_list())
    plan_dates |= set(data.nodes.get_column("date").unique().to_list())
    if missing := plan_dates - dates:
        first, last = min(missing), max(missing)
        raise DataError(
            f"{plan.path} and {forecast.path} do not match: the plan has {len(missing)} dates "
            f"the forecast does not cover ({first} .. {last}). Give the forecast the plan "
            "was made from."
        )


def _check_pairs(forecast: Loaded, other: Loaded, pairs: pl.DataFrame) -> None:
    """A simulation's or promise table's pairs are lanes of the forecast."""
    lanes = _forecast_lanes(forecast)
    if strange := _pairs(pairs) - lanes:
        raise DataError(
            f"{other.path} and {forecast.path} are not from the same network: the "
            f"{other.kind} has {len(strange)} origin-destination pairs that are not lanes of "
            f"the forecast ({_listed(strange)}). Give the forecast it was made from."
        )


def _check_history(history: Loaded, forecast: Loaded) -> None:
    lanes = _forecast_lanes(forecast)
    known = _pairs(history.data.table)
    if strange := lanes - known:
        raise DataError(
            f"{forecast.path} and {history.path} are not from the same network: the forecast "
            f"has {len(strange)} lanes the history does not ({_listed(strange)}). Give the "
            "history the forecast was made from."
        )


NOUNS = {"scenarios": "scenario folder"}  # "The <noun> was made from ..."


def check_inputs(inputs: dict[str, Loaded]) -> None:
    """DataError (65) naming the files when the inputs are not of one network."""
    forecast = inputs.get("forecast")
    if forecast is None:
        return
    if "plan" in inputs:
        _check_plan(forecast, inputs["plan"])
    if "simulation" in inputs:
        _check_pairs(forecast, inputs["simulation"], inputs["simulation"].data.pairs)
    if "promise" in inputs:
        _check_pairs(forecast, inputs["promise"], inputs["promise"].data.table)
    if "history" in inputs:
        _check_history(inputs["history"], forecast)


def scenario_plans(inputs: dict[str, Loaded]) -> dict[str, str]:
    """The SHA-256 of each scenario's trucks.parquet (by scenario), as the scenario folder's
    manifest.json recorded it: which plan of the folder a simulation was made from."""
    files = ((inputs["scenarios"].record() or {}) if "scenarios" in inputs else {}).get("files")
    suffix = "/trucks.parquet"
    return {k[: -len(suffix)]: v for k, v in (files or {}).items() if k.endswith(suffix)}


def _simulated_plan(inputs: dict[str, Loaded], hashes: dict[str, str]) -> list[str]:
    """A warning when a plan or scenario folder is given beside the simulation and the plan
    it simulated is none of them."""
    if "simulation" not in inputs or not {"plan", "scenarios"} & set(inputs):
        return []
    made = (inputs["simulation"].record() or {}).get("inputs", {}).get("plan") or {}
    sha = made.get("sha256")
    given = {hashes.get("plan/trucks.parquet"), *scenario_plans(inputs).values()}
    if not sha or sha in given:
        return []
    where = " or ".join(f"--{k}" for k in ("plan", "scenarios") if k in inputs)
    return [
        f"The simulation was made from the plan {made.get('path')} (trucks SHA-256 "
        f"{str(sha)[:12]}), which is not the plan given with {where}: its figures are of "
        "another plan."
    ]


def notes(inputs: dict[str, Loaded], hashes: dict[str, str]) -> list[str]:
    """Warnings for the page: a plan, scenario folder, simulation, forecast or backtest not
    made from the inputs beside it, a simulation of another plan than the --plan or any of
    the --scenarios given, a monitoring run that scored another forecast or plan than the
    ones given, and files changed since their folder's manifest recorded them. `hashes`
    maps each source's label to the SHA-256 of the file as read."""
    found = []
    # (input, the key its record names a file by, the input given beside it, its file)
    made_from = [
        ("plan", "demand", "forecast", "forecast"),
        ("forecast", "history", "history", "history"),
        ("backtest", "history", "history", "history"),
        ("monitor", "forecast", "forecast", "forecast"),
        ("monitor", "plan_trucks", "plan", "plan/trucks.parquet"),
        ("scenarios", "demand", "forecast", "forecast"),
        ("simulation", "demand", "forecast", "forecast"),
        ("promise", "plan", "plan", "plan/flows.parquet"),
    ]
    for kind, key, other, label in made_from:
        if kind not in inputs or other not in inputs:
            continue
        record = (inputs[kind].record() or {}).get("inputs", {}).get(key)
        given = hashes.get(label)
        if record and given and record.get("sha256") != given:
            found.append(
                f"The {NOUNS.get(kind, kind)} was made from {record.get('path')} (SHA-256 "
                f"{str(record.get('sha256'))[:12]}), not from the {other} given here "
                f"({given[:12]}): same network, another run."
            )
    found += _simulated_plan(inputs, hashes)
    for loaded in inputs.values():
        for source in loaded.sources:
            expected, actual = source.manifest_sha256, hashes.get(source.label)
            if expected and actual and expected != actual:
                found.append(
                    f"{source.path} changed since its folder's manifest.json recorded it "
                    f"(SHA-256 {actual[:12]}, recorded {expected[:12]})."
                )
    return found
