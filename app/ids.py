"""Identifier generation."""

from __future__ import annotations

import secrets


def new_id(prefix: str = "") -> str:
    """A random, URL-safe, unguessable id (128 bits), optionally prefixed."""
    return prefix + secrets.token_hex(16)
