"""Parlour: a Socket.IO-first realtime assistant server."""

__version__ = "0.1.0"
