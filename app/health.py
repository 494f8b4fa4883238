"""Health checks of every backend, for /internal/health and `parlour check`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

Check = Callable[[], Awaitable[str]]
log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A check's failure whose message is written for operators (shown as the detail)."""

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

    async def _run(self, name: str, check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(), self._timeout)
            ok = True
        except CheckFailed as exc:
            detail, ok = str(exc)[:300], False
        except TimeoutError:
            detail, ok = f"no answer within {self._timeout:g} s", False
        except Exception as exc:
            # The exception's text can hold addresses, paths or credentials: the log gets it.
            log.warning("health check %s failed", name, exc_info=True)
            detail, ok = f"failed ({type(exc).__name__}); see the server log", False
        return {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "detail": detail}

    async def report(self) -> dict[str, Any]:
        """`{status: ok|degraded|down, checks, version, node_id}`."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(n, self._checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        failed = {n for n, r in checks.items() if not r["ok"]}
        status = "down" if failed & REQUIRED else "degraded" if failed else "ok"
        return {"status": status, "checks": checks, "version": self.version,
                "node_id": self.node_id}
