"""Read a page as a user sees it: its text, its links, its table rows; not its markup, which
may change its spacing or attributes without changing what it shows."""

import re
from html.parser import HTMLParser

_INVISIBLE = {"script", "style", "title", "head"}


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.words: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self._skip = 0
        self._link: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in _INVISIBLE:
            self._skip += 1
        elif tag == "a":
            self._link = (dict(attrs).get("href", ""), [])
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in _INVISIBLE:
            self._skip -= 1
        elif tag == "a" and self._link:
            href, words = self._link
            self.links.append((squash(" ".join(words)), href))
            self._link = None
        elif tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(squash(" ".join(self._cell)))
            self._cell = None

    def handle_data(self, data):
        if self._skip:
            return
        self.words.append(data)
        for collected in (self._link and self._link[1], self._cell):
            if collected is not None:
                collected.append(data)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read(html: str) -> _Reader:
    reader = _Reader()
    reader.feed(html)
    return reader


def text(html: str) -> str:
    """The visible text, with every run of white space made one space."""
    return squash(" ".join(read(html).words))


def links(html: str) -> list[tuple[str, str]]:
    """Each link as (its text, its href)."""
    return read(html).links


def rows(html: str) -> list[list[str]]:
    """Each table row as the text of its cells."""
    return read(html).rows


def row(html: str, first_cell: str) -> list[str]:
    """The table row whose first cell reads ``first_cell``."""
    (found,) = [r for r in rows(html) if r and r[0] == first_cell]
    return found
