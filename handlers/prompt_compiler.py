"""`/api/v1/prompt_compiler/*`: a prompt as a reusable template, its form, values from text."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from app.errors import AppError
from app.prompt_compiler import Parameter, PromptCompiler
from app.schemas import Payload
from handlers.common import body, json_response, principal, services


class CompileRequest(Payload):
    prompt: str
    modelid: str | None = Field(None, min_length=3, max_length=200)


class UpdateParameters(Payload):
    prompt: str
    text: str
    parameters: list[Parameter] | None = Field(None, max_length=50)
    modelid: str | None = Field(None, min_length=3, max_length=200)


def compiler(request: web.Request) -> PromptCompiler:
    found = services(request).prompt_compiler
    if found is None:
        raise AppError("unavailable", "the prompt compiler is not configured")
    return found


async def compile_prompt(request: web.Request) -> web.Response:
    req = await body(request, CompileRequest)
    compiled = await compiler(request).compile(principal(request), req.prompt, req.modelid)
    return json_response(compiled.model_dump(mode="json", exclude_none=True))


async def compile_form(request: web.Request) -> web.Response:
    req = await body(request, CompileRequest)
    compiled, form = await compiler(request).compile_form(
        principal(request), req.prompt, req.modelid)
    return json_response({**compiled.model_dump(mode="json", exclude_none=True), "form": form})


async def update_parameters(request: web.Request) -> web.Response:
    req = await body(request, UpdateParameters)
    values = await compiler(request).update_parameters(
        principal(request), req.prompt, req.text, req.parameters, req.modelid)
    return json_response({"values": values})


def setup(app: web.Application) -> None:
    """Register the prompt compiler routes."""
    app.router.add_post("/api/v1/prompt_compiler/compile", compile_prompt)
    app.router.add_post("/api/v1/prompt_compiler/compile/form", compile_form)
    app.router.add_post("/api/v1/prompt_compiler/update_parameters", update_parameters)
