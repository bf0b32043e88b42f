"""The forecast stage: hierarchy, rules, reconciliation, coherence and intervals."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmplan
from mmplan.config import FORECAST_MODELS, RECONCILERS, ForecastConfig
from mmplan.errors import ConfigError, DataError
from mmplan.forecasting import event_features, forecast
from tests.conftest import fast_config, make_history

REL = 1e-6


def assert_coherent(
    fc: pl.DataFrame, parent_level: str, child_level: str, key: str | list[str] | None
):
    """Each parent's forecast equals the sum of its children's, per date."""
    parents = fc.filter(pl.col("level") == parent_level)
    children = fc.filter(pl.col("level") == child_level)
    keys = [] if key is None else [key] if isinstance(key, str) else key
    by = [*keys, "date"]
    sums = children.group_by(by).agg(pl.col("forecast").sum().alias("children"))
    joined = parents.join(sums, on=by, how="left")
    assert joined.height == parents.height
    diff = (joined["forecast"] - joined["children"]).abs()
    scale = joined["forecast"].abs().clip(lower_bound=1.0)
    assert (diff / scale).max() <= REL


def assert_intervals_ordered(fc: pl.DataFrame, levels: list[int]):
    assert (fc["forecast"] >= 0).all()
    for p in levels:
        assert (fc[f"lo_{p}"] >= 0).all()
        assert (fc[f"lo_{p}"] <= fc["forecast"] + 1e-9).all()
        assert (fc["forecast"] <= fc[f"hi_{p}"] + 1e-9).all()
    # wider level, wider interval
    if len(levels) == 2:
        narrow, wide = sorted(levels)
        assert (fc[f"lo_{wide}"] <= fc[f"lo_{narrow}"] + 1e-9).all()
        assert (fc[f"hi_{narrow}"] <= fc[f"hi_{wide}"] + 1e-9).all()


def test_forecast_table_contract(history):
    cfg = fast_config()
    fc = forecast(history, cfg)
    assert fc.columns == [
        "unique_id",
        "level",
        "origin",
        "destination",
        "origin_region",
        "date",
        "forecast",
        "lo_80",
        "hi_80",
        "lo_95",
        "hi_95",
        "model",
    ]
    assert fc.schema["date"] == pl.Date and fc.schema["forecast"] == pl.Float64
    assert set(fc["level"]) == {"total", "origin_region", "origin", "lane"}
    last = history["date"].max()
    assert fc["date"].min() == last + dt.timedelta(days=1)
    assert fc["date"].max() == last + dt.timedelta(days=cfg.horizon)
    # every series has every date exactly once
    assert fc.group_by("unique_id").len()["len"].unique().to_list() == [cfg.horizon]
    lanes = fc.filter(pl.col("level") == "lane")
    assert lanes.select(["origin", "destination"]).null_count().sum_horizontal().item() == 0
    totals = fc.filter(pl.col("level") == "total")
    assert totals.select(["origin", "destination", "origin_region"]).null_count().row(0) == (
        cfg.horizon,
        cfg.horizon,
        cfg.horizon,
    )


def test_rules_are_visible_in_model_column(history):
    fc = forecast(history, fast_config())
    model = dict(
        fc.filter(pl.col("level") == "lane").select("destination", "model").unique().iter_rows()
    )
    assert model["DS00"] == "CrostonOptimized/sparse"  # intermittent lane
    assert model["DS01"] == "SeasonalNaive/short"  # opened 20 days before the end
    assert model["DS02"] == "Zero/closed"  # no rows in the last 60 days
    assert model["DS03"] == "SeasonalNaive"
    closed = fc.filter(pl.col("destination") == "DS02")
    assert (closed["forecast"] == 0).all() and (closed["hi_95"] == 0).all()


def test_very_short_lane_uses_historic_average():
    h = make_history(n_lanes=4)
    young = h.filter(pl.col("destination") == "DS01").tail(5)
    h = pl.concat([h.filter(pl.col("destination") != "DS01"), young])
    fc = forecast(h, fast_config())
    lane = fc.filter(pl.col("destination") == "DS01")
    assert lane["model"].unique().to_list() == ["HistoricAverage/short"]
    assert (lane["forecast"] > 0).all()


@pytest.mark.parametrize("method", RECONCILERS)
def test_every_reconciler_is_coherent_and_ordered(history, method):
    cfg = fast_config(reconciliation=method)
    fc = forecast(history, cfg)
    assert_coherent(fc, "total", "lane", None)
    assert_coherent(fc, "total", "origin_region", None)
    assert_coherent(fc, "origin", "lane", "origin")
    assert_intervals_ordered(fc, cfg.levels)


def test_reconciliation_changes_forecasts(history):
    bu = forecast(history, fast_config(reconciliation="BottomUp"))
    mint = forecast(history, fast_config(reconciliation="MinTrace(ols)"))
    assert not np.allclose(bu["forecast"].to_numpy(), mint["forecast"].to_numpy())


def test_grouped_hierarchy(history):
    h = history.with_columns(
        destination_region=pl.when(pl.col("destination") < "DS05")
        .then(pl.lit("N"))
        .otherwise(pl.lit("S"))
    )
    cfg = fast_config(
        hierarchy=[
            ["origin_region"],
            ["destination_region"],
            ["origin_region", "destination_region"],
        ]
    )
    fc = forecast(h, cfg)
    assert set(fc["level"]) == {
        "total",
        "origin_region",
        "destination_region",
        "origin_region/destination_region",
        "lane",
    }
    assert_coherent(fc, "total", "destination_region", None)
    assert_coherent(fc, "destination_region", "lane", "destination_region")
    assert_coherent(
        fc, "origin_region/destination_region", "lane", ["origin_region", "destination_region"]
    )
    cross = fc.filter(pl.col("level") == "origin_region/destination_region")
    assert cross["unique_id"].n_unique() == 4


def test_top_down_on_grouped_hierarchy_is_config_error(history):
    h = history.with_columns(destination_region=pl.lit("N"))
    cfg = fast_config(
        hierarchy=[["origin_region"], ["destination_region"]],
        reconciliation="TopDown(average_proportions)",
    )
    with pytest.raises(ConfigError, match="nested"):
        forecast(h, cfg)


def test_unknown_hierarchy_column_is_config_error(history):
    with pytest.raises(ConfigError, match="destination_region"):
        forecast(history, fast_config(hierarchy=[["destination_region"]]))


def test_bad_history_is_data_error(history):
    bad = history.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(-1.0).otherwise(pl.col("volume")).alias("volume")
    )
    with pytest.raises(DataError, match="negative volume"):
        forecast(bad, fast_config())


def test_library_api_is_exported(history):
    cfg = mmplan.load_config()
    cfg.forecast = fast_config()
    assert mmplan.forecast(history, cfg).equals(forecast(history, cfg.forecast))


def test_categorical_keys_forecast_as_their_string_twin(history):
    # The forecast compacts its keys to Categorical (memory at 100k lanes); a history that
    # arrives Categorical is valid, forecasts the same, and the table's keys stay String.
    cfg = fast_config()
    compact = history.with_columns(pl.col(pl.String).cast(pl.Categorical))
    fc = forecast(compact, cfg)
    assert fc.equals(forecast(history, cfg))
    assert {fc.schema[c] for c in ("origin", "destination")} == {pl.String}


@pytest.mark.slow
def test_forecast_is_deterministic(history):
    cfg = fast_config(model="AutoETS")
    assert forecast(history, cfg).equals(forecast(history, cfg))


def test_champions_override_model(history):
    champions = pl.DataFrame(
        {"unique_id": ["lane:FC0/DS03", "total"], "model": ["Naive", "HistoricAverage"]}
    )
    fc = forecast(history, fast_config(), champions=champions)
    got = dict(fc.select("unique_id", "model").unique().iter_rows())
    assert got["lane:FC0/DS03"] == "Naive"
    assert got["total"] == "HistoricAverage"
    assert got["lane:FC2/DS05"] == "SeasonalNaive"


def test_event_features_mark_configured_days():
    days = pl.date_range(dt.date(2025, 11, 26), dt.date(2025, 12, 2), eager=True)
    feats = event_features(days, ForecastConfig().events)
    bf = dict(zip(feats["ds"], feats["event_black_friday"], strict=True))
    assert bf[dt.date(2025, 11, 28)] == 1.0 and sum(bf.values()) == 1.0
    assert feats["event_cyber_monday"].sum() == 1.0


@pytest.mark.slow
def test_events_feed_exogenous_models():
    # A lane with a large spike on each configured event day: AutoARIMA with the event
    # regressor must forecast a spike on the event day in the horizon.
    days = 126
    start = dt.date(2025, 1, 1)
    dates = [start + dt.timedelta(days=k) for k in range(days)]
    events = {"promo": [start + dt.timedelta(days=k) for k in range(10, days + 20, 21)]}
    rng = np.random.default_rng(1)
    vol = 100 + rng.normal(0, 3, days)
    vol[[k for k in range(10, days, 21)]] += 200
    h = pl.DataFrame(
        {
            "date": dates,
            "origin": "FC0",
            "destination": "DS0",
            "volume": vol,
            "origin_region": "EAST",
        }
    )
    cfg = ForecastConfig(
        model="AutoARIMA",
        horizon=14,
        events=events,
        min_history_days=28,
        reconciliation="BottomUp",
        season_length=7,
        validation_windows=0,  # the point forecast is checked: in-window validation cost 70%
    )
    fc = forecast(h, cfg).filter(pl.col("level") == "lane")
    event_day = start + dt.timedelta(days=136)
    assert event_day in events["promo"]
    spike = fc.filter(pl.col("date") == event_day)["forecast"].item()
    others = fc.filter(pl.col("date") != event_day)["forecast"].mean()
    assert spike > others + 100


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_lanes=st.integers(2, 7),
    days=st.integers(40, 90),
    seed=st.integers(0, 10_000),
    sparse_every=st.sampled_from([0, 2, 3]),
    method=st.sampled_from(RECONCILERS),
    model=st.sampled_from(["SeasonalNaive", "Naive", "HistoricAverage"]),
    lanes=st.sampled_from(["share", "model"]),
)
def test_properties_coherent_non_negative_ordered(
    n_lanes, days, seed, sparse_every, method, model, lanes
):
    h = make_history(n_lanes=n_lanes, days=days, seed=seed, sparse_every=sparse_every)
    cfg = fast_config(reconciliation=method, model=model, horizon=5, lanes=lanes)
    fc = forecast(h, cfg)
    assert fc.height == fc["unique_id"].n_unique() * 5
    assert_coherent(fc, "total", "lane", None)
    assert_coherent(fc, "origin", "lane", "origin")
    assert_coherent(fc, "origin_region", "lane", "origin_region")
    assert_intervals_ordered(fc, cfg.levels)


def test_each_lane_gets_its_own_forecast_whatever_the_id_order():
    # "A-B" sorts before "A/" as text but after "A" as an origin: ids and lanes order differ.
    days = 60
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=k) for k in range(days)]
    lanes = [("A", "X", 10.0), ("A-B", "X", 1000.0), ("A", "Y", 100.0), ("AB", "X", 5.0)]
    h = pl.concat(
        pl.DataFrame(
            {"date": dates, "origin": o, "destination": d, "volume": v, "origin_region": "R"}
        )
        for o, d, v in lanes
    )
    for method in ("BottomUp", "MinTrace(ols)"):
        fc = forecast(h, fast_config(model="Naive", reconciliation=method))
        got = dict(
            fc.filter(pl.col("level") == "lane")
            .group_by("origin", "destination")
            .agg(pl.col("forecast").mean())
            .select(pl.concat_str("origin", "destination"), "forecast")
            .iter_rows()
        )
        for o, d, v in lanes:
            assert got[o + d] == pytest.approx(v), (method, o, d)


# The ARIMA and ETS searches take seconds; the other models run in under one.
@pytest.mark.parametrize(
    "model",
    [
        pytest.param(m, marks=pytest.mark.slow) if m in ("AutoARIMA", "AutoETS") else m
        for m in FORECAST_MODELS
    ],
)
def test_every_offered_model_runs(model):
    h = make_history(n_lanes=3, days=70, seed=2, sparse_every=0, new_lane=False, closed_lane=False)
    fc = forecast(h, fast_config(model=model, season_length=7, horizon=7, n_jobs=1))
    lanes = fc.filter(pl.col("level") == "lane")
    assert set(lanes["model"]) == {model}
    assert_intervals_ordered(fc, [80, 95])


# ------------------------------------------------------------------ lanes = "share"


def share_history(days: int = 120) -> pl.DataFrame:
    """Origin FC0 ships 2:1 to DS0 and DS1 every day; DS2 opened 7 days before the end at a
    rate of half DS1's; DS3 closed 40 days before the end. FC1 has one lane."""
    start = dt.date(2025, 1, 1)
    # A weekly pattern: a 7-day mean equals a 28-day one, so rates compare exactly.
    total = 300.0 + 10.0 * (np.arange(days) % 7)
    rows = []
    for k in range(days):
        date = start + dt.timedelta(days=k)
        rows += [(date, "FC0", "DS0", 2 * total[k]), (date, "FC0", "DS1", total[k])]
        if k >= days - 7:
            rows.append((date, "FC0", "DS2", total[k] / 2))
        if k < days - 40:
            rows.append((date, "FC0", "DS3", 50.0))
        rows.append((date, "FC1", "DS0", 80.0 + k % 7))
    return pl.DataFrame(
        rows, schema=["date", "origin", "destination", "volume"], orient="row"
    ).with_columns(origin_region=pl.lit("EAST"))


def test_share_splits_the_parent_forecast_by_recent_rate():
    fc = forecast(share_history(), fast_config(lanes="share"))
    lanes = fc.filter(pl.col("level") == "lane")
    origin = fc.filter(pl.col("level") == "origin").select(
        "origin", "date", pl.col("forecast").alias("o")
    )
    got = lanes.join(origin, on=["origin", "date"]).with_columns(
        share=pl.col("forecast") / pl.col("o")
    )
    share = dict(
        got.group_by("destination", "origin")
        .agg(pl.col("share").mean())
        .filter(pl.col("origin") == "FC0")
        .select("destination", "share")
        .iter_rows()
    )
    # Mean daily rates over the days each lane existed: 2 : 1 : 0.5, DS3 closed.
    assert share["DS0"] == pytest.approx(2 / 3.5, rel=1e-9)
    assert share["DS1"] == pytest.approx(1 / 3.5, rel=1e-9)
    assert share["DS2"] == pytest.approx(0.5 / 3.5, rel=1e-9)
    assert share["DS3"] == 0
    assert_coherent(fc, "origin", "lane", "origin")
    assert_coherent(fc, "total", "lane", None)
    assert_intervals_ordered(fc, [80, 95])
    labels = dict(
        lanes.select("destination", "origin", "model")
        .unique()
        .filter(pl.col("origin") == "FC0")
        .select("destination", "model")
        .iter_rows()
    )
    assert labels == {"DS0": "Share", "DS1": "Share", "DS2": "Share", "DS3": "Zero/closed"}
    # Only the levels above the lanes were fitted.
    assert set(fc.filter(pl.col("level") != "lane")["model"]) == {"SeasonalNaive"}


def test_share_lane_intervals_carry_the_lanes_own_noise():
    fc = forecast(share_history(), fast_config(lanes="share"))
    lanes = fc.filter(pl.col("level") == "lane")
    closed = lanes.filter(pl.col("destination") == "DS3")
    assert (closed["forecast"] == 0).all() and (closed["hi_95"] == 0).all()
    # FC1's only lane is the whole origin: no noise of its own, so the origin's interval.
    fc1 = (
        fc.filter(pl.col("origin") == "FC1")
        .group_by("date")
        .agg(pl.col("hi_80").min().alias("a"), pl.col("hi_80").max().alias("b"))
    )
    assert (fc1["a"] - fc1["b"]).abs().max() < 1e-6
    ds0 = lanes.filter((pl.col("destination") == "DS0") & (pl.col("origin") == "FC0"))
    assert (ds0["hi_80"] > ds0["forecast"]).all()


def test_share_needs_the_last_level_to_nest():
    h = share_history().with_columns(
        pl.when(pl.col("destination") == "DS0")
        .then(pl.lit("A"))
        .otherwise(pl.lit("B"))
        .alias("zone")
    )
    with pytest.raises(ConfigError, match="nest"):
        forecast(h, fast_config(lanes="share", hierarchy=[["origin"], ["zone"]]))


def test_share_with_lanes_straight_under_total():
    fc = forecast(share_history(), fast_config(lanes="share", hierarchy=[]))
    assert set(fc["level"]) == {"total", "lane"}
    assert_coherent(fc, "total", "lane", None)
    assert_intervals_ordered(fc, [80, 95])


@pytest.mark.parametrize("fit_days", [None, 40])
@pytest.mark.parametrize("logged", ["every day", "days with volume"])
def test_level_series_equal_the_sums_of_the_lanes_daily_grid(fit_days, logged):
    from mmplan.forecasting import aggregate, history_hierarchy, lane_series, level_series

    h = make_history(n_lanes=8, days=120, seed=5)
    if logged == "days with volume":  # a missing day is a zero, not a lane not yet open
        h = h.filter(pl.col("volume") > 0)
    hier = history_hierarchy(h, fast_config())
    daily, _ = lane_series(h, fit_days)
    want = aggregate(daily, hier).filter(~pl.col("unique_id").str.starts_with("lane:"))
    got = level_series(h, hier.levels[:-1], fit_days)
    assert got.equals(want.select(got.columns))


@pytest.mark.parametrize("method", ["TopDown(average_proportions)", "MiddleOut", "MinTrace(ols)"])
def test_share_with_a_lone_total_needs_no_reconciliation(method):
    fc = forecast(share_history(), fast_config(lanes="share", hierarchy=[], reconciliation=method))
    assert_coherent(fc, "total", "lane", None)
    assert_intervals_ordered(fc, [80, 95])


def test_share_middle_out_at_the_lanes_parent_is_bottom_up_from_it():
    h = make_history(n_lanes=6, days=120, seed=4)
    middle = forecast(h, fast_config(lanes="share", reconciliation="MiddleOut"))
    explicit = forecast(
        h, fast_config(lanes="share", reconciliation="MiddleOut", middle_level="origin")
    )
    bottom_up = forecast(h, fast_config(lanes="share", reconciliation="BottomUp"))
    assert middle.equals(bottom_up) and explicit.equals(bottom_up)


def test_share_of_a_sparse_lane_counts_its_missing_days_as_zeros():
    """A lane logged only on days with volume is not 'new' inside the fit window."""
    base = share_history()
    end = base["date"].max()
    sparse = pl.DataFrame(
        {
            "date": [end - dt.timedelta(days=k) for k in (110, 60, 2)],
            "origin": "FC1",
            "destination": "DS9",
            "volume": [80.0, 80.0, 80.0],
            "origin_region": "EAST",
        }
    )
    h = pl.concat([base, sparse])
    for fit_days in (None, 40):
        fc = forecast(h, fast_config(lanes="share", fit_days=fit_days, share_days=28))
        lanes = fc.filter((pl.col("origin") == "FC1") & (pl.col("level") == "lane"))
        total = lanes.group_by("destination").agg(pl.col("forecast").sum())
        share = dict(total.iter_rows())
        # 80 over the 28-day window against FC1->DS0's ~83 a day (0.033), and not 80 over
        # the 3 days since its last-but-one row (0.24, a lane treated as new). Its weekday
        # profile (all its recent volume on one weekday) moves the week's sum a little.
        got = share["DS9"] / (share["DS9"] + share["DS0"])
        assert 0.02 < got < 0.06, (fit_days, got)


def test_mstl_on_less_than_a_year_and_a_half_keeps_honest_intervals():
    # On 200 days MSTL's yearly season absorbed the noise: the total's 80% interval was
    # +-1 package on thousands, and backtest coverage was 0%. Such series get a weekly
    # season only.
    history = make_history(n_lanes=6, days=200, sparse_every=0)
    fc = forecast(history, fast_config(model="MSTL", lanes="share", levels=[80]))
    total = fc.filter(pl.col("level") == "total")
    assert (total["model"] == "MSTL").all()
    relative = ((total["hi_80"] - total["forecast"]) / total["forecast"]).to_numpy()
    daily = history.group_by("date").agg(pl.col("volume").sum())["volume"]
    # Poisson noise alone is sqrt(mean) a day; the interval must be at least that wide.
    assert relative.min() > 0.8 * np.sqrt(daily.mean()) / daily.mean()
