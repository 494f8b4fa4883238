"""The embedded model says what it is; third-party request logs stay quiet (issue 12, §1, §9)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from app.config import LLMSettings
from app.llm.local_server import LocalLlamaServer
from app.llm.registry import build_registry
from app.logs import QUIET_LOGGERS, setup_logging
from tests.client import start_parlour
from tests.scripted_provider import ScriptedProvider
from tests.servers import free_port


def test_catalog_marks_the_demo_model_and_lists_available_models_first(
    llm_env: pytest.MonkeyPatch,
) -> None:
    llm_env.setenv("GROQ_API_KEY", "gsk-test")
    registry = build_registry(LLMSettings(), "http://127.0.0.1:9/v1")
    models, total = registry.catalog(page=1, page_size=1000)
    flags = [m["available"] for m in models]
    assert flags == sorted(flags, reverse=True) and flags.count(True) >= 2
    assert {m["provider"] for m in models if m["available"]} == {"local", "groq"}
    demo = [m for m in models if m["demo"]]
    assert [m["id"] for m in demo] == ["local:smollm2"]
    assert "135M" in demo[0]["notice"] and "OPENAI_API_KEY=" in demo[0]["notice"]
    assert all(m["notice"] is None for m in models if not m["demo"])
    # Paging still covers every model once.
    paged = [m["id"] for p in range(1, total // 7 + 2) for m in registry.catalog(p, 7)[0]]
    assert paged == [m["id"] for m in models]


async def test_rest_catalog_and_startup_warning_for_the_demo_default(
    make_settings: Any, caplog: pytest.LogCaptureFixture, llm_env: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.main")
    server = await start_parlour(
        make_settings(), providers={"local": ScriptedProvider(name="local")}
    )
    try:
        user = await server.signup()
        status, page = await server.request("GET", "/api/v1/model?page_size=3", user)
        first = page["models"][0]
        assert status == 200 and first["id"] == "local:smollm2"
        assert first["available"] is True and first["demo"] is True
        warnings = [r.getMessage() for r in caplog.records if r.name == "app.main"]
        assert any("local:smollm2" in w and "demo model" in w and "OPENAI_API_KEY=" in w
                   for w in warnings), warnings
    finally:
        await server.close()


async def test_no_demo_warning_with_a_real_default(
    make_settings: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.main")
    server = await start_parlour(
        make_settings(llm__default_model="scripted:fixed"), providers={"scripted": ScriptedProvider()}
    )
    await server.close()
    assert not [r for r in caplog.records if "demo model" in r.getMessage()]


@pytest.fixture
def logging_as_served(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """`parlour serve`'s logging at INFO (to the captured stderr); restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    setup_logging("text", "INFO", False)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


async def test_request_logs_of_http_clients_and_health_probes_are_quiet(
    logging_as_served: None, llama_server: LocalLlamaServer, capsys: pytest.CaptureFixture[str],
) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="loading model")

    app = web.Application()
    app.router.add_get("/health", unavailable)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 503
        assert (await llama_server.check()).startswith("llama-server on port")
        logging.getLogger("app.test").info("our own INFO lines still show")
    finally:
        await runner.cleanup()
    for handler in logging.getLogger().handlers:  # lines on the loop are written in batches
        handler.flush()
    err = capsys.readouterr().err
    assert "our own INFO lines still show" in err
    assert "HTTP Request" not in err and "503" not in err and "/health" not in err, err
