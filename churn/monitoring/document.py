"""A document of sections, paragraphs and tables, written as Markdown and as a web page.

The model card (`churn.monitoring.card`) and the evaluation report
(`churn.monitoring.evaluate`) are each laid out once as a `Document`; `to_markdown` and
`to_html` write that one layout in the two formats. The data's values reach both as text:
escaped, with no line break, so a value cannot add a heading, a link, a table cell or
markup. A paragraph's `code` spans are the one construct kept, in both formats.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    blocks: list[str | Table] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section]


# Figures in cells --------------------------------------------------------------------


def share(value: float | None) -> str:
    """A share as a percentage, one decimal; empty where there is none."""
    return "" if value is None else f"{value:.1%}"


def figure(value: float | None) -> str:
    """A metric to three decimals; empty where it cannot be computed."""
    return "" if value is None else f"{value:.3f}"


# The two formats ----------------------------------------------------------------------


def to_markdown(document: Document) -> str:
    lines = [f"# {_markdown_text(document.title, code=False)}", ""]
    for section in document.sections:
        lines += [f"## {_markdown_text(section.title, code=False)}", ""]
        for block in section.blocks:
            lines += _markdown_table(block) if isinstance(block, Table) else [_markdown_text(block)]
            lines.append("")
    return "\n".join(lines)


# Any line break or control character (\n, \r, \x85, U+2028, ...): one line, one block.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# What starts Markdown's inline syntax (links, images, HTML, entities, emphasis, code,
# cells, Streamlit's maths); "_" only where it can open or close emphasis (not in_a_word).
_SPECIAL = re.compile(r"[\\`*\[\]<&|~#!$]|(?<![^\W_])_|_(?![^\W_])")
# What starts a block at the beginning of a paragraph: a list item, a quote.
_BLOCK_START = re.compile(r"^([-+>]|\d+(?=[.)]))")


def markdown_escaped(text: str) -> str:
    """`text` as inline Markdown that shows exactly it, on one line."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), _BREAKS.sub(" ", text))


def _markdown_text(text: str, *, code: bool = True) -> str:
    """A paragraph or heading: `code` spans, as the HTML shows them; the rest escaped."""
    pieces = _BREAKS.sub(" ", text).strip().split("`") if code else [text.strip()]
    inline = "".join(
        (f"`{piece}`" if piece.strip() else "") if i % 2 else markdown_escaped(piece)
        for i, piece in enumerate(pieces)
    )
    return _BLOCK_START.sub(r"\\\1", inline)


def _markdown_table(table: Table) -> list[str]:
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(markdown_escaped(cell).strip() for cell in row) + " |"

    return [
        cells(table.headers),
        "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(table.headers))) + "|",
        *(cells(row) for row in table.rows),
    ]


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def to_html(document: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(document.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(document.title)}</h1>",
    ]
    for section in document.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            parts.append(_html_table(block) if isinstance(block, Table) else _html_text(block))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_text(text: str) -> str:
    # `code` spans, as Markdown shows them; everything else is escaped text.
    pieces = html.escape(text).split("`")
    return (
        "<p>"
        + "".join(f"<code>{piece}</code>" if i % 2 else piece for i, piece in enumerate(pieces))
        + "</p>"
    )


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
