"""Health checks of every backend, for /internal/health and `parlour check`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Check = Callable[[], Awaitable[str]]

# A failing required check makes the service "down"; an optional one "degraded".
REQUIRED = {"mongo"}


class HealthService:
    """Runs named checks concurrently with a timeout each."""

    def __init__(self, version: str, node_id: str, timeout: float = 3.0) -> None:
        self._checks: dict[str, Check] = {}
        self.version = version
        self.node_id = node_id
        self._timeout = timeout

    def register(self, name: str, check: Check) -> None:
        """Add a check; it returns a short detail string or raises."""
        self._checks[name] = check

    async def _run(self, check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(), self._timeout)
            ok = True
        except Exception as exc:
            detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
        return {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "detail": detail}

    async def report(self) -> dict[str, Any]:
        """`{status: ok|degraded|down, checks, version, node_id}`."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failed = {n for n, r in checks.items() if not r["ok"]}
        status = "down" if failed & REQUIRED else "degraded" if failed else "ok"
        return {"status": status, "checks": checks, "version": self.version,
                "node_id": self.node_id}
