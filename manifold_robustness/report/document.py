"""A tiny document model rendered to both Markdown and self-contained HTML (images embedded as
base64), so ``REPORT.md`` and ``report.html`` carry the same content without a Markdown library.

Blocks: :class:`Heading`, :class:`Para`, :class:`Bullets`, :class:`Table`, :class:`Image`,
:class:`Code`.  Text is plain (no inline markup); both renderers escape what they must.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from pathlib import Path
from typing import Sequence


@dataclasses.dataclass
class Heading:
    text: str
    level: int = 2


@dataclasses.dataclass
class Para:
    text: str
    strong: str | None = None  # a bold lead-in, e.g. a verdict


@dataclasses.dataclass
class Bullets:
    items: Sequence[str]


@dataclasses.dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str | None = None


@dataclasses.dataclass
class Image:
    path: Path  # the PNG on disk
    alt: str


@dataclasses.dataclass
class Code:
    text: str


def _md_cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence, base: Path) -> str:
    """Markdown; images are linked relative to ``base`` (the folder REPORT.md lies in)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append((f"**{b.strong}** " if b.strong else "") + b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Table):
            lines = ([b.caption, ""] if b.caption else []) + [
                "| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                "|" + "|".join("---" for _ in b.header) + "|",
            ] + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({Path(b.path).relative_to(base).as_posix()})")
        elif isinstance(b, Code):
            out.append("```\n" + b.text.rstrip("\n") + "\n```")
        else:
            raise TypeError(f"unknown block {b!r}")
    return "\n\n".join(out) + "\n"


_STYLE = ("body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.4}"
          "table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.15em .5em;"
          "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
          "pre{background:#f5f5f5;padding:.5em;overflow-x:auto}caption{text-align:left;font-style:italic}")


def to_html(blocks: Sequence, title: str) -> str:
    """One self-contained HTML page; images are embedded as base64 data URIs."""
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append("<p>" + (f"<strong>{e(b.strong)}</strong> " if b.strong else "") + e(b.text) + "</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
            head = "<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b.header) + "</tr>"
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table>{cap}{head}{body}</table>")
        elif isinstance(b, Image):
            data = base64.b64encode(Path(b.path).read_bytes()).decode("ascii")
            out.append(f"<p><img alt='{e(b.alt)}' src='data:image/png;base64,{data}'></p>")
        elif isinstance(b, Code):
            out.append(f"<pre>{e(b.text)}</pre>")
        else:
            raise TypeError(f"unknown block {b!r}")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
