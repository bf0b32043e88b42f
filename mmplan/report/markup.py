"""HTML pieces the sections share: escaping, number formats, tables and key figures.

Everything that reaches the page from a file (facility names, paths, config values) goes
through `esc`, so a name with `<` or `&` in it is text, never markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["esc", "number", "percent", "span", "table", "figures", "paragraph", "short_sha"]


def esc(value: Any) -> str:
    """`value` as HTML text."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 0) -> str:
    """A number with thousands separators; '-' for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return esc(value)


def percent(value: Any, digits: int = 1) -> str:
    """A share as a percentage ('-' when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.{digits}f}%"


def span(first: Any, last: Any) -> str:
    """A range of dates (or anything printable): 'first – last'."""
    return f"{esc(first)} – {esc(last)}"


def short_sha(sha: str | None) -> str:
    """The first 12 hex digits, the whole digest in a tooltip."""
    if not sha:
        return "-"
    return f'<code title="{esc(sha)}">{esc(sha[:12])}</code>'


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """A table of already formatted (escaped) cells; columns in `numeric` align right."""
    right = set(numeric)
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in right else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in right else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figures(items: Sequence[tuple[str, str]]) -> str:
    """Key figures in a row of tiles: (label, formatted value)."""
    tiles = "".join(
        f'<div class="tile"><div class="value">{value}</div><div class="label">{esc(label)}</div>'
        "</div>"
        for label, value in items
    )
    return f'<div class="tiles">{tiles}</div>'


def paragraph(text: str, css: str = "") -> str:
    """A paragraph of plain text (escaped)."""
    cls = f' class="{css}"' if css else ""
    return f"<p{cls}>{esc(text)}</p>"
