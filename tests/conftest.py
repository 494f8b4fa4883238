"""Session fixtures: real servers on loopback (SecantusDB, redis-server, moto, llama.cpp)."""

from __future__ import annotations

pytest_plugins = ["tests.rag_fixtures", "tests.llm_fixtures"]
