"""The input kinds a report knows: how each is read and which section it draws.

A kind is one `InputKind`: a name (the CLI option without its dashes), a reader that turns
a path into a checked `Loaded` input, and a renderer that turns the inputs into a
`Section` of the page (or None when another section already shows it). Adding a section
for a new command's output is one `register(InputKind(...))` call beside its reader and
renderer, plus an option on `mmplan report`: nothing else in the report changes.

Renderers get every loaded input (`Context.inputs`), so a section may draw on more than
its own (the forecast's fan charts draw the history when it is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmplan.config import ReportConfig
from mmplan.report.inputs import Loaded

__all__ = ["Part", "Section", "Context", "InputKind", "KINDS", "register"]


@dataclass(frozen=True)
class Part:
    """One piece of a section: HTML (already escaped) or a plotly figure."""

    html: str = ""
    figure: Any = None


@dataclass(frozen=True)
class Section:
    """A section of the page: an anchor (unique id), a title and its parts in order."""

    anchor: str
    title: str
    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What a renderer sees: every input read (by kind), the [report] config, the
    series named with --series, and the SHA-256 of each file as read (by source label)."""

    inputs: dict[str, Loaded]
    config: ReportConfig
    series: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputKind:
    """An input a report can be given, in page order (`order`, lowest first)."""

    name: str
    read: Callable[[Path], Loaded]
    render: Callable[[Context], Section | None]
    order: int


KINDS: dict[str, InputKind] = {}


def register(kind: InputKind) -> InputKind:
    """Make `kind` known to `build_report` (a second kind of the same name replaces it)."""
    KINDS[kind.name] = kind
    return kind
