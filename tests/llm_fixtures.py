"""Fixtures for the LLM layer (the real llama-server with SmolLM2)."""
