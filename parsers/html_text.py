"""HTML to plain text for HTML-only mail: block elements become line breaks.

>>> html_to_text("<p>وضعیت&nbsp;۴۸۲۱</p><div>line<br>two</div><style>p{}</style>")
'وضعیت ۴۸۲۱\\n\\nline\\ntwo'
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "p div br li tr h1 h2 h3 h4 h5 h6 blockquote pre table ul ol hr section article".split()
)
_SKIP = frozenset({"script", "style", "head", "title"})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.quote_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        if tag == "blockquote":
            self.quote_depth += 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self.skipping:
            self.skipping -= 1
        if tag == "blockquote" and self.quote_depth:
            self.quote_depth -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.quote_depth:
            data = "\n".join("> " + line for line in data.splitlines())
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body; quoted blocks keep a "> " prefix."""
    collector = _Collector()
    try:
        collector.feed(html)
        collector.close()
    except (AssertionError, ValueError):
        pass
    text = "".join(collector.parts).replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
