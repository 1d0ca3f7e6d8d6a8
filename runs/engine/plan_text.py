"""The shape of a markdown plan, with the line each part came from: front matter, headings,
top-level list items with their continuation lines and nested items, and paragraphs that
belong to no item. No meaning yet: `plans.read_plan` gives it.

Lines are read after CRLF and CR become LF, leading tabs become spaces to the next
multiple of 4 and trailing spaces are dropped. An item is nested in the item above when it
is indented at least to that item's text (2 columns for `- `, 3 for `1. `); otherwise it
starts a new top-level item. Lines inside a code fence are kept as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TAB = 4

_ITEM = re.compile(r"^(?P<indent> *)(?P<marker>[-*+]|\d{1,9}[.)])(?:(?P<gap> +)(?P<rest>.*))?$")
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ *(?P<fence>`{3,}|~{3,})")
_CHECKBOX = re.compile(r"^\[(?P<mark>[ xX])\](?: +|$)")
# `[name]` or `[name:value]`, but not a link's text `[text](url)`, an image or `\\[`.
_TAG = re.compile(r"(?<![\\!])\[(?P<name>[A-Za-z_][\w-]*)(?::(?P<value>[^\]]*))?\](?!\()")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_PREFIX = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?")
_BREAK = re.compile(r"^ {0,3}([-*_])(?: *\1){2,}$")  # a thematic break: ends the list


@dataclass
class Part:
    """One line of an item's text (or a criterion with its continuation lines)."""

    line: int
    text: str
    code: bool = False  # inside a code fence: kept verbatim, no tags read


@dataclass
class Item:
    line: int
    indent: int  # the column of the item's text: nested items start at or after it
    checked: bool
    title: Part
    description: list[Part] = field(default_factory=list)
    criteria: list[Part] = field(default_factory=list)


@dataclass
class Section:
    """A heading and the items under it; line 0 for the items before any heading."""

    line: int
    level: int
    name: str
    items: list[Item] = field(default_factory=list)


@dataclass
class Document:
    front: list[tuple[int, str, str]] = field(default_factory=list)  # line, key, raw value
    sections: list[Section] = field(default_factory=lambda: [Section(0, 0, "")])
    stray: list[int] = field(default_factory=list)  # first lines of paragraphs in no item
    problems: list[tuple[int, str]] = field(default_factory=list)  # line, what is wrong


def clean_lines(text: str) -> list[str]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [_expand_indent(line).rstrip() for line in text.split("\n")]


def _expand_indent(line: str) -> str:
    """Tabs in the indentation and around a list marker as spaces, to the next multiple
    of TAB columns; other tabs are left alone (a code fence's content keeps them)."""
    prefix = _PREFIX.match(line)
    assert prefix is not None  # every part of the pattern is optional
    return prefix.group().expandtabs(TAB) + line[prefix.end() :]


def parse(text: str) -> Document:
    lines = clean_lines(text)
    document = Document()
    start = _front_matter(lines, document)
    _Reader(document).read(lines, start)
    return document


def _front_matter(lines: list[str], document: Document) -> int:
    """Reads `key: value` lines between two `---` lines at the top; returns how many lines
    that took (0 when there is no front matter, or it is not closed)."""
    if not lines or lines[0] != "---" or "---" not in lines[1:]:
        if lines and lines[0] == "---":
            # Read as a thematic break and the lines after it: the plan's body is not lost.
            document.problems.append((1, "the front matter started here has no closing `---`"))
        return 0
    end = lines.index("---", 1) + 1
    for number, line in enumerate(lines[1 : end - 1], 2):
        key, colon, value = line.partition(":")
        if not line.strip():
            continue
        if not colon or not key.strip():
            document.problems.append((number, f"front matter line {line!r} is not `key: value`"))
        else:
            document.front.append((number, key.strip(), value.strip()))
    return end


class _Reader:
    def __init__(self, document: Document) -> None:
        self.document = document
        self.item: Item | None = None
        self.last: Part | None = None  # what a continuation line continues
        self.blank = False
        self.fence = ""
        self.in_stray = False

    def read(self, lines: list[str], start: int) -> None:
        for number, line in enumerate(lines[start:], start + 1):
            if self.fence:
                self._fenced(number, line)
            elif not line.strip():
                self.blank = True
            else:
                self._line(number, line)
                self.blank = False

    def _line(self, number: int, line: str) -> None:
        indent = len(line) - len(line.lstrip(" "))
        if heading := _HEADING.match(line):
            name = (heading["text"] or "").strip()
            self.document.sections.append(Section(number, len(heading["level"]), name))
            self._end_item()
        elif _BREAK.match(line):
            self._end_item()
        elif item := _ITEM.match(line):
            self._item(number, item)
        elif self.item is not None and (not self.blank or indent >= self.item.indent):
            if fence := FENCE.match(line):
                self.fence = fence["fence"]
                self._code(number, line)
            elif self.item.criteria and self.last is self.item.criteria[-1] and not self.blank:
                self.last.text += " " + line.strip()
            else:
                if self.blank and self.item.description:
                    self.item.description.append(Part(number - 1, ""))
                self.last = Part(number, line.strip())
                self.item.description.append(self.last)
        else:
            if fence := FENCE.match(line):
                self.fence = fence["fence"]
            if not self.in_stray or self.blank:
                self.document.stray.append(number)
                self._end_item()
            self.in_stray = True

    def _item(self, number: int, match: re.Match) -> None:
        rest = match["rest"] or ""
        indent = len(match["indent"]) + len(match["marker"]) + len(match["gap"] or " ")
        checkbox = _CHECKBOX.match(rest)
        text = rest[checkbox.end() :] if checkbox else rest
        if self.item is not None and len(match["indent"]) >= self.item.indent:
            self.last = Part(number, text.strip())
            self.item.criteria.append(self.last)
            return
        checked = bool(checkbox and checkbox["mark"] in "xX")
        self.item = Item(number, indent, checked, Part(number, text.strip()))
        self.last = self.item.title
        self.in_stray = False
        self.document.sections[-1].items.append(self.item)

    def _fenced(self, number: int, line: str) -> None:
        if line.lstrip(" ").startswith(self.fence):
            self.fence = ""
        if self.item is not None and not self.in_stray:
            self._code(number, line)

    def _code(self, number: int, line: str) -> None:
        assert self.item is not None
        indent = len(line) - len(line.lstrip(" "))
        self.item.description.append(Part(number, line[min(indent, self.item.indent) :], True))
        self.last = None

    def _end_item(self) -> None:
        self.item, self.last = None, None
        self.in_stray = False


def split_tags(text: str) -> tuple[str, list[tuple[str, str | None]]]:
    """The text without its tags (spaces collapsed, `\\[` read as `[`), and the tags as
    (name, value or None) in order. Nothing inside a `code span` is a tag."""
    tags: list[tuple[str, str | None]] = []
    kept: list[str] = []
    position = 0
    for code in [*_CODE_SPAN.finditer(text), None]:
        end = code.start() if code else len(text)
        plain = text[position:end]
        for tag in _TAG.finditer(plain):
            tags.append((tag["name"], tag["value"]))
        kept.append(_TAG.sub(" ", plain).replace("\\[", "["))
        if code:
            kept.append(code.group())
            position = code.end()
    return " ".join("".join(kept).split()), tags


def escape(text: str) -> str:
    """`text` as written in a plan so that it reads back as itself: what would be read as
    a tag is escaped (`\\[`)."""
    pieces: list[str] = []
    position = 0
    for code in [*_CODE_SPAN.finditer(text), None]:
        end = code.start() if code else len(text)
        pieces.append(_TAG.sub(lambda tag: "\\" + tag.group(), text[position:end]))
        if code:
            pieces.append(code.group())
            position = code.end()
    return "".join(pieces)
