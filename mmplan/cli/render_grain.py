"""Terminal lines of a week or month capacity plan (`optimize --grain`): the fleet per
period and its peak, where a fleet budget falls short, and where facility capacity binds.

They follow `render.print_plan`'s lines and read only the plan's summary (summary.json's
`grain`, `operating_days`, `partial_periods`, `fleet` and `capacity`), so what is printed is
what was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_grain"]

# Rows of the binding-capacity table and origins on the peak line; the files hold them all.
_TOP = 10


def _periods(dates: list[str], limit: int = 4) -> str:
    more = f" and {len(dates) - limit} more" if len(dates) > limit else ""
    return ", ".join(dates[:limit]) + more


def _price(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _days_text(summary: dict[str, Any]) -> str:
    """'7 operating days a week', and for months the range of their operating days."""
    per_week = summary["operating_days_per_week"]
    text = f"{per_week} operating days a week"
    days = list(summary["operating_days"].values())
    if summary["grain"] == "month" and days:
        text += f": {min(days)}-{max(days)} a month"
    return text


def _print_budgets(console: Console, fleet: dict[str, Any], grain: str) -> None:
    """Per budget, the periods it falls short in (and what one more truck a day saves), and
    the periods it binds on but suffices."""
    budget = fleet.get("budget", {})
    limits = {"total": budget.get("total"), **budget.get("origin", {})}
    short = budget.get("short_periods", {})
    for name, dates in budget.get("binding_dates", {}).items():
        short_here = short.get(name, [])
        enough = [d for d in dates if d not in short_here]
        value = fleet.get("marginal_value", {}).get(name)
        saves = f"; one more truck a day saves {value['saved']:,.0f}" if value else ""
        if short_here:
            console.print(
                f"[bold yellow]fleet budget short:[/] {escape(name)} ({limits.get(name, 0):g} "
                f"trucks a day) falls short in {len(short_here)} {grain}s: "
                f"{_periods(short_here)}{saves}",
                markup=True,
            )
        if enough:
            console.print(
                f"  {escape(name)} uses all its budget but suffices in {len(enough)} {grain}s: "
                f"{_periods(enough)}",
                markup=False,
            )
    if budget.get("binding_dates") == {} and limits != {"total": None}:
        console.print(f"fleet budgets suffice in every {grain}.")


def _print_capacity(console: Console, capacity: dict[str, Any], grain: str) -> None:
    """The facility-periods at capacity, where more capacity pays most first."""
    from rich.table import Table

    rows = capacity.get("binding", [])
    if not rows:
        console.print(f"capacity: no facility is full in any {grain}.")
        return
    console.print(
        f"capacity binds in {len(capacity['binding_periods'])} {grain}s: "
        f"{_periods(capacity['binding_periods'])}"
    )
    table = Table(title=f"facilities at capacity, by {grain}", show_edge=False)
    # "short": unserved on pairs starting or ending there; "shadow": a package more of
    # capacity saves this with the loads fixed, "loads free": with them free to change.
    for col in ("facility", grain, "throughput", "capacity", "short", "shadow", "loads free"):
        left = col in ("facility", grain)
        table.add_column(col, justify="left" if left else "right", no_wrap=col == grain)
    # Where a package more of capacity saves most, loads free to change, then loads fixed.
    ranked = sorted(
        rows, key=lambda r: (-(r["capacity_value"] or 0.0), -(r["shadow_price"] or 0.0))
    )
    for row in ranked[:_TOP]:
        table.add_row(
            row["node"],
            row["date"],
            f"{row['throughput']:,.0f}",
            f"{row['capacity']:,.0f}",
            f"{row['unserved_volume']:,.0f}",
            _price(row["shadow_price"]),
            _price(row["capacity_value"]),
        )
    console.print(table)
    if len(rows) > _TOP:
        console.print(f"  and {len(rows) - _TOP} more facility-{grain}s (capacity.parquet)")


def print_grain(console: Console, summary: dict[str, Any]) -> None:
    """The lines a week or month plan adds to `render.print_plan`'s (none for a day plan)."""
    grain = summary.get("grain", "day")
    if grain == "day":
        return
    fleet = summary["fleet"]
    console.print(
        f"{grain}ly plan: {len(summary['operating_days'])} {grain}s, trucks as loads "
        f"({_days_text(summary)}); transit_days ignored"
    )
    for start, part in summary.get("partial_periods", {}).items():
        # A planner should see that this period's capacity is pro-rated, not the whole's.
        console.print(
            f"partial {grain} {start}: {part['covered_days']} of {part['period_days']} days "
            f"({part['first']} to {part['last']}), planned with {part['operating_days']} "
            "operating days of capacity",
            markup=False,
        )
    tops = sorted(fleet["peak_per_origin"].items(), key=lambda kv: -kv[1])[:5]
    console.print(
        f"fleet per {grain}: peak {fleet['peak']:,.0f} trucks a day in the {grain} of "
        f"{fleet['peak_date']}; peak per origin: "
        + (", ".join(f"{o} {v:,.0f}" for o, v in tops) or "none"),
        markup=False,
    )
    _print_budgets(console, fleet, grain)
    _print_capacity(console, summary["capacity"], grain)
