"""The synthetic network's demand: the event calendar, seasonality, each DS's drivers,
the facility move, disruptions, and the split of each pair's packages over its paths
(steps 3 to 5 of `mmplan.synthetic`'s generative model).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from mmplan.config import default_events
from mmplan.synthetic.network import Net, Paths, choice_weights

WEEKLY = np.array([1.18, 1.12, 1.05, 1.00, 0.97, 0.90, 0.78])  # Monday .. Sunday


DS_BASE_MEDIAN = 1200.0  # packages a day into a median DS


def _event_dates(years: range) -> dict[str, list[dt.date]]:
    """mmplan's default event calendar; computed rules for years it does not list."""
    known = default_events()
    out: dict[str, list[dt.date]] = {k: [] for k in known}
    for y in years:
        listed = {k: [d for d in v if d.year == y] for k, v in known.items()}
        nov1 = dt.date(y, 11, 1)
        thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
        jul1 = dt.date(y, 7, 1)
        tuesday2 = jul1 + dt.timedelta(days=(1 - jul1.weekday()) % 7 + 7)
        rules = {
            "prime_day": [tuesday2, tuesday2 + dt.timedelta(days=1)],
            "black_friday": [thanksgiving + dt.timedelta(days=1)],
            "cyber_monday": [thanksgiving + dt.timedelta(days=4)],
            "christmas": [dt.date(y, 12, 25)],
        }
        for k in out:
            out[k] += listed.get(k) or rules.get(k, [])
    return out


def events(start: dt.date, n: int) -> np.ndarray:
    """Multiplier on ordinary demand per day for retail events and holidays."""
    mult = np.ones(n)
    first, last = start, start + dt.timedelta(days=n - 1)
    ev = _event_dates(range(first.year - 1, last.year + 2))

    def put(day: dt.date, value: float) -> None:
        t = (day - start).days
        if 0 <= t < n:
            mult[t] *= value

    day = dt.timedelta(days=1)
    for pd_ in ev["prime_day"]:
        put(pd_, 1.85)
    # Orders placed on the last Prime Day still ship over the next days.
    for y in {d.year for d in ev["prime_day"]}:
        end = max(d for d in ev["prime_day"] if d.year == y)
        for k, v in enumerate((1.4, 1.2, 1.08), start=1):
            put(end + k * day, v)
    for bf in ev["black_friday"]:
        for k, v in enumerate((1.45, 1.3, 1.25)):  # Friday, Saturday, Sunday
            put(bf + k * day, v)
    for cm in ev["cyber_monday"]:
        put(cm, 1.8)
        for k, v in enumerate((1.55, 1.4, 1.3, 1.28), start=1):
            put(cm + k * day, v)
        # December peak: a plateau that builds to mid-December, then the last
        # shipping days before Christmas fall away.
        t = cm + 5 * day
        dec21 = dt.date(cm.year, 12, 21)
        while t <= dec21:
            put(t, 1.22 + 0.12 * min(1.0, (t - cm).days / 18))
            t += day
        for d_, v in (
            (22, 1.1),
            (23, 1.0),
            (24, 0.55),
            (26, 0.85),
            (27, 0.95),
            (28, 0.95),
            (29, 0.95),
            (30, 0.95),
            (31, 0.9),
        ):
            put(dt.date(cm.year, 12, d_), v)
        put(dt.date(cm.year + 1, 1, 1), 0.35)  # New Year's Day
    for xmas in ev["christmas"]:
        put(xmas, 0.06)  # buildings mostly closed
    return mult


@dataclass
class Drivers:
    """Per-DS demand drivers: base volume, yearly growth and sensitivity to events."""

    base: np.ndarray
    growth: np.ndarray
    sens: np.ndarray


@dataclass
class Move:
    """DS `old` hands its zip codes to DS `new` in waves from day `start`."""

    old: int
    new: int
    start: int


def seasons(rng: np.random.Generator, regions: int, dow: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Per-region weekly and yearly shapes (regions, days), alike but not identical."""
    weekly = WEEKLY * np.exp(rng.normal(0, 0.03, (regions, 7)))
    weekly /= weekly.mean(axis=1, keepdims=True)
    amp = rng.uniform(0.05, 0.10, regions)
    phase = rng.normal(340, 12, regions)
    yearly = 1 + amp[:, None] * np.cos(2 * np.pi * (doy[None, :] - phase[:, None]) / 365.25)
    return yearly * weekly[:, dow]  # (R, n_all)


def drivers(rng: np.random.Generator, nd: int) -> Drivers:
    base = DS_BASE_MEDIAN * np.exp(rng.normal(0, 0.6, nd))
    growth = rng.normal(0.12, 0.07, nd)
    sens = np.exp(rng.normal(0, 0.15, nd))  # how strongly a DS reacts to retail events
    return Drivers(base, growth, sens)


def move(
    rng: np.random.Generator, net: Net, drivers: Drivers, ds_region: np.ndarray, days: int
) -> Move | None:
    """Facility move: DS `old` hands its zip codes to a new DS (the last id, a new building
    near it), starting at 60% of the history. The new DS takes the old one's region,
    place and drivers (`net`, `drivers` and `ds_region` change in place)."""
    nd = len(net.dss)
    if nd < 2:
        return None
    base, growth, sens = drivers.base, drivers.growth, drivers.sens
    new = nd - 1
    old = int(rng.choice(nd - 1, p=choice_weights(base[: nd - 1])))
    net.regions[net.dss[new]] = ds_region[new] = ds_region[old]
    net.xy[net.dss[new]] = net.xy[net.dss[old]] + rng.normal(0, 8, 2)
    base[new], growth[new], sens[new] = base[old], growth[old], sens[old]
    return Move(old, new, int(0.6 * days))


def active_ds(move: Move | None, nd: int, days: int, n_all: int) -> np.ndarray:
    """Each DS's share of its zip codes per day: the move goes in three weekly waves."""
    active_ds = np.ones((nd, n_all))
    if move is not None:
        wave = max(1, min(7, days // 30))
        moved = np.zeros(n_all)
        for k in range(3):
            moved[move.start + k * wave :] = (k + 1) / 3
        active_ds[move.new], active_ds[move.old] = moved, 1 - moved
    return active_ds


def disruptions(
    rng: np.random.Generator, ds_region: np.ndarray, regions: int, days: int, n_all: int
) -> np.ndarray:
    """Weather closes part of a region for 1-3 days; most of the lost volume ships in the
    following four days. A multiplier per DS and day."""
    disrupt = np.ones((len(ds_region), n_all))
    for _ in range(2 + days // 365):
        r = rng.integers(regions)
        dur = int(rng.integers(1, 4))
        t0 = int(rng.integers(min(7, days - 8), max(min(7, days - 8) + 1, days - 14)))
        drop = rng.uniform(0.2, 0.5)
        hit = ds_region == r
        disrupt[np.ix_(hit, np.arange(t0, t0 + dur))] *= drop
        rebound = 1 + 0.8 * (1 - drop) * dur / 4
        disrupt[np.ix_(hit, np.arange(t0 + dur, min(t0 + dur + 4, n_all)))] *= rebound
    return disrupt


def fc_outage(rng: np.random.Generator, nf: int, days: int, n_all: int) -> np.ndarray:
    """An FC outage (power, systems): one day at a third, the backlog over the next two."""
    fc_factor = np.ones((nf, n_all))
    t_out = int(rng.integers(days // 4, max(days // 4 + 1, days - 10)))
    fc_factor[rng.integers(nf), t_out : t_out + 3] = (0.35, 1.3, 1.3)[: min(3, n_all - t_out)]
    return fc_factor


def split(
    rng: np.random.Generator, paths: Paths, v: np.ndarray, n_od: int, days: int
) -> np.ndarray:
    """Split each pair's packages `v` over its paths (multinomial, one rank at a time):
    whole packages per path and day."""
    h = slice(0, days)
    path_od, S = paths.od, paths.share
    path_od_a = np.array(path_od)
    n_path = len(path_od)
    rank = np.zeros(n_path, dtype=int)
    for p in range(1, n_path):
        rank[p] = rank[p - 1] + 1 if path_od[p] == path_od[p - 1] else 0
    x = np.zeros((n_path, days))
    left = v.astype(np.int64)
    left_p = np.ones((n_od, days))
    for r_ in range(rank.max() + 1):
        idx = np.flatnonzero(rank == r_)
        ods = path_od_a[idx]
        prob = np.where(left_p[ods] > 1e-9, S[idx, h] / np.maximum(left_p[ods], 1e-12), 0.0)
        last = np.isin(idx + 1, np.flatnonzero(rank == 0)) | (idx + 1 == n_path)
        prob[last] = 1.0  # the last path takes whatever is left
        draw = rng.binomial(left[ods], np.clip(prob, 0, 1))
        x[idx] = draw
        left[ods] -= draw
        left_p[ods] -= S[idx, h]
    return x
