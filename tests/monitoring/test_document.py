"""The one layout of the card and the evaluation report, written as Markdown and HTML."""

from __future__ import annotations

from markdown_it import MarkdownIt

from churn.monitoring.document import Document, Section, Table, figure, share, to_html, to_markdown

HOSTILE = (
    "x\n# Injected\r\n## heading\u2028[click](javascript:alert(1)) <script>alert(1)</script> "
    "a|b ![img](https://evil.example/x.png) &lt;b&gt; *em* _u_ `code` 1. $x$ <https://evil.example>"
)


def test_markdown_shows_hostile_values_as_text() -> None:
    table = Table(["segment", HOSTILE], [[f"Gender = {HOSTILE}", "1"], ["a|b", "c"]])
    document = Document(
        f"Model card: {HOSTILE}",
        [Section(HOSTILE, [f"Why: {HOSTILE}.", "- " + HOSTILE, table])],
    )
    markdown = to_markdown(document)
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = parser.parse(markdown)
    kinds = [t.type for t in tokens]
    assert kinds.count("heading_open") == 2  # the title and the section: nothing injected
    assert kinds.count("paragraph_open") == 2
    assert kinds.count("tr_open") == 3
    assert kinds.count("th_open") == 2
    assert kinds.count("td_open") == 4
    assert "bullet_list_open" not in kinds
    assert "ordered_list_open" not in kinds
    inline = [child.type for t in tokens if t.children for child in t.children]
    for construct in ("link_open", "image", "html_inline", "em_open", "s_open"):
        assert construct not in inline
    assert "code_inline" in inline  # the text's own `code` span, as the HTML shows it
    page = parser.render(markdown)
    for markup in ("<script", "<a ", "href=", "<img", "<em>", "<h3"):
        assert markup not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 6  # shown, as text
    assert page.count("[click](javascript:alert(1))") == 6  # as text, not a link
    assert "&amp;lt;b&amp;gt;" in page  # an entity in the data is shown as typed
    assert "<td>a|b</td>" in page  # a pipe stays in its cell
    # The HTML card escapes the same values.
    page = to_html(document)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_a_document_is_the_same_layout_in_both_formats() -> None:
    document = Document(
        "Title",
        [Section("First", ["Some `code` here.", Table(["a", "b"], [["1", "2"]])]), Section("Next")],
    )
    assert to_markdown(document) == (
        "# Title\n\n## First\n\nSome `code` here.\n\n| a | b |\n| --- | ---: |\n| 1 | 2 |\n\n"
        "## Next\n"
    )
    page = to_html(document)
    assert "<h1>Title</h1>\n<h2>First</h2>\n<p>Some <code>code</code> here.</p>" in page
    assert "<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td>" in page
    assert page.endswith("<h2>Next</h2>\n</body></html>\n")


def test_empty_figures_are_empty_cells() -> None:
    assert [share(0.1234), share(None), figure(0.12345), figure(None)] == ["12.3%", "", "0.123", ""]
