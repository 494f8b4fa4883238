"""Cut streamed text into sentences, so speech starts before the text ends."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?;:\u2026\u3002\uff01\uff1f](?=[\s\"')\]]|$)|\n")
MAX_CHARS = 240  # a sentence longer than this is cut at a space


class SentenceSplitter:
    """Feed deltas with `push`; complete sentences come out; `flush` gives the rest."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self._text = ""
        self._max = max_chars

    def push(self, delta: str) -> list[str]:
        """The sentences completed by this delta."""
        self._text += delta
        out: list[str] = []
        while True:
            match = _END.search(self._text)
            # A mark at the very end may still be followed by more (e.g. "3." then "14").
            if match is not None and match.end() < len(self._text):
                cut = match.end()
            elif len(self._text) > self._max:
                space = self._text.rfind(" ", 0, self._max)
                cut = space + 1 if space > 0 else self._max
            else:
                break
            sentence, self._text = self._text[:cut].strip(), self._text[cut:]
            if sentence:
                out.append(sentence)
        return out

    def flush(self) -> str:
        """What is left (the last sentence, unterminated)."""
        rest, self._text = self._text.strip(), ""
        return rest
