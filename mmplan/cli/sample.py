"""`mmplan sample`: write a synthetic middle-mile network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmplan.cli.app import (
    ConfigOpt,
    DebugOpt,
    JsonOpt,
    QuietOpt,
    WaitOpt,
    app,
    handled,
    stderr_console,
    summarize,
)

__all__ = ["sample"]


@app.command()
@handled
def sample(
    # A str, not a Path: Path("") is ".", and an empty OUTDIR must not mean the current folder.
    outdir: Annotated[str, typer.Argument(help="Folder to write history, nodes and lanes to.")],
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed, same files.")] = None,
    regions: Annotated[int | None, typer.Option(min=1, help="Number of regions.")] = None,
    fcs: Annotated[int | None, typer.Option(min=1, help="Fulfillment centers.")] = None,
    scs: Annotated[int | None, typer.Option(min=1, help="Sort centers.")] = None,
    dss: Annotated[int | None, typer.Option(min=1, help="Delivery stations.")] = None,
    days: Annotated[int | None, typer.Option(min=28, help="Days of history.")] = None,
    start: Annotated[str | None, typer.Option(help="First history date, YYYY-MM-DD.")] = None,
    market: Annotated[
        str | None, typer.Option(help="Market name: a market column, facilities prefixed.")
    ] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a synthetic middle-mile network: history.parquet, nodes.parquet, lanes.parquet.

    Example: mmplan sample data/sample --seed 7 --fcs 2 --scs 6 --dss 40 --days 730
    """
    from mmplan.cli import outputs, render
    from mmplan.cli.inputs import parse_date
    from mmplan.config import load_config
    from mmplan.io import provenance
    from mmplan.synthetic import sample as make_sample

    folder = _output_folder(outdir)
    first = parse_date("--start", start)
    flags: dict[str, object] = dict(seed=seed, regions=regions, fcs=fcs, scs=scs, dss=dss)
    flags |= dict(days=days, start=first, market=market)
    cfg = load_config(config, sample=flags)
    outputs.check_output_folder(folder, (config,))
    tables = make_sample(cfg.sample)
    # No timings in this record: the same seed must give byte-identical files.
    outputs.write_sample(folder, tables, provenance("sample", cfg.as_record()["sample"]), wait)
    summary = render.sample_summary(tables, folder)
    summarize("sample", summary, json_out)
    render.print_sample(stderr_console(quiet), summary)


def _output_folder(outdir: str) -> Path:
    """OUTDIR as a path; an empty one is a usage error (it would swap the current folder)."""
    from mmplan.errors import UsageError

    if not outdir:
        raise UsageError(
            f"OUTDIR {outdir!r} is empty: name the folder to write the sample to, "
            "e.g. mmplan sample data/sample (use . for the current folder)."
        )
    return Path(outdir)
