"""The prompt compiler: a prompt becomes a reusable template with typed parameters.

The model is asked for JSON (structured output where the provider has it), and what it
returns is checked twice: against the JSON Schema with `jsonschema`, then by the pydantic
models (placeholders and parameters agree, enums have options, defaults fit their type).
Invalid output is asked for once more, with the reason; then `provider_error`. Every
call is an admitted completion (limits, usage, metrics) like `/run`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.assistant.completion import CompletionService
from app.config import LimitsSettings
from app.errors import INVALID_PAYLOAD, PROVIDER_ERROR, AppError
from app.limits import check_message_chars
from app.llm.base import ChatMessage, ChatParams
from app.models import Principal

T = TypeVar("T")
NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ATTEMPTS = 2  # the first answer and one retry
Scalar = str | float | bool


class Parameter(BaseModel):
    """One placeholder of a compiled prompt."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = Field("", max_length=500)
    type: Literal["string", "number", "boolean", "enum"]
    default: Scalar | None = None
    options: list[str] | None = Field(None, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "enum" and not self.options:
            raise ValueError(f"parameter {self.name}: an enum needs options")
        if self.type != "enum" and self.options:
            raise ValueError(f"parameter {self.name}: only enums have options")
        if self.default is not None and not _fits(self, self.default):
            raise ValueError(f"parameter {self.name}: default {self.default!r} is not a "
                             f"{self.type}")
        return self


class Compiled(BaseModel):
    """A template and its parameters; every `{{name}}` is a parameter and vice versa."""

    model_config = ConfigDict(extra="forbid")

    compiled_prompt: str = Field(min_length=1, max_length=32_000)
    parameters: list[Parameter] = Field(max_length=50)

    @model_validator(mode="after")
    def _placeholders_match(self) -> Compiled:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("parameter names must be unique")
        used = set(PLACEHOLDER.findall(self.compiled_prompt))
        if used != set(names):
            missing = sorted(used - set(names))
            unused = sorted(set(names) - used)
            raise ValueError(f"placeholders without a parameter: {missing}; parameters "
                             f"not used as {{{{name}}}}: {unused}")
        return self


class Values(BaseModel):
    """Parameter values read from free text."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Scalar | None]


def _fits(parameter: Parameter, value: Scalar) -> bool:
    if parameter.type == "boolean":
        return isinstance(value, bool)
    if parameter.type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if parameter.type == "enum":
        return value in (parameter.options or [])
    return isinstance(value, str)


def form_schema(parameters: list[Parameter]) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) object with one property per parameter."""
    properties: dict[str, Any] = {}
    for p in parameters:
        prop: dict[str, Any] = {"title": p.name.replace("_", " ").capitalize()}
        if p.description:
            prop["description"] = p.description
        if p.type == "enum":
            prop.update(type="string", enum=list(p.options or []))
        else:
            prop["type"] = p.type
        if p.default is not None:
            prop["default"] = p.default
        properties[p.name] = prop
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": properties, "additionalProperties": False,
        "required": [p.name for p in parameters if p.default is None],
    }
    Draft202012Validator.check_schema(schema)
    return schema


COMPILE_SYSTEM = """You turn a user's prompt into a reusable prompt template.
Replace each specific value that someone reusing the prompt would change (a topic, a name,
a tone, a length, a language...) with a placeholder {{name}} (letters, digits, _).
Answer with JSON only, exactly of this shape:
{"compiled_prompt": "<the template with {{name}} placeholders>",
 "parameters": [{"name": "<name>", "description": "<what it is>",
                 "type": "string" | "number" | "boolean" | "enum",
                 "default": <the value in the original prompt>,
                 "options": ["<only for enum>"]}]}
Every placeholder must have exactly one parameter and every parameter must be used."""

VALUES_SYSTEM = """You read values for a prompt template's parameters from a user's text.
Answer with JSON only: {"values": {"<parameter name>": <value or null>}} with one entry per
parameter, typed as the parameter says (string, number, boolean, or one of the options)."""


class PromptCompiler:
    """compile, compile_form and update_parameters, each one admitted model call (+1 retry)."""

    def __init__(
        self, limits: LimitsSettings, completions: CompletionService, max_tokens: int
    ) -> None:
        self._limits = limits
        self._completions = completions
        self._max_tokens = max_tokens  # of one answer (assistant.max_output_tokens)

    async def compile(self, principal: Principal, prompt: str, model: str | None) -> Compiled:
        """The prompt as a template with `{{name}}` placeholders and their parameters."""
        self._check(prompt, "prompt")
        schema = Compiled.model_json_schema()
        return await self._ask(
            principal, model, schema, COMPILE_SYSTEM, f"Prompt:\n{prompt}",
            lambda data: Compiled.model_validate(data),
        )

    async def compile_form(
        self, principal: Principal, prompt: str, model: str | None
    ) -> tuple[Compiled, dict[str, Any]]:
        """`compile`, plus a JSON Schema form of its parameters."""
        compiled = await self.compile(principal, prompt, model)
        return compiled, form_schema(compiled.parameters)

    async def update_parameters(
        self, principal: Principal, prompt: str, text: str,
        parameters: list[Parameter] | None, model: str | None,
    ) -> dict[str, Scalar | None]:
        """Values for the prompt's parameters (compiled first when not given) from `text`."""
        self._check(prompt, "prompt")
        self._check(text, "text")
        if parameters is None:
            parameters = (await self.compile(principal, prompt, model)).parameters
        if not parameters:
            return {}
        form = form_schema(parameters)
        nullable = {name: {"anyOf": [prop, {"type": "null"}]}
                    for name, prop in form["properties"].items()}  # null: not in the text
        values_schema: dict[str, Any] = {
            "type": "object", "required": ["values"], "additionalProperties": False,
            "properties": {"values": {"type": "object", "properties": nullable,
                                      "additionalProperties": False}},
        }
        by_name = {p.name: p for p in parameters}
        described = json.dumps([p.model_dump(exclude_none=True) for p in parameters])

        def parse(data: Any) -> dict[str, Scalar | None]:
            values = Values.model_validate(data).values
            unknown = sorted(set(values) - set(by_name))
            if unknown:
                raise ValueError(f"unknown parameters: {unknown}")
            for name, value in values.items():
                if value is not None and not _fits(by_name[name], value):
                    raise ValueError(f"{name}: {value!r} is not a {by_name[name].type}")
            # A value the text does not give (absent or null) keeps the default.
            return {name: values[name] if values.get(name) is not None
                    else by_name[name].default for name in by_name}

        return await self._ask(
            principal, model, values_schema, VALUES_SYSTEM,
            f"Template:\n{prompt}\n\nParameters:\n{described}\n\nText:\n{text}", parse,
        )

    def _check(self, value: str, field: str) -> None:
        if not value.strip():
            raise AppError(INVALID_PAYLOAD, f"{field}: must not be empty")
        check_message_chars(len(value), self._limits, field)

    async def _ask(
        self, principal: Principal, model: str | None, schema: dict[str, Any], system: str,
        user: str, parse: Callable[[Any], T],
    ) -> T:
        messages = [ChatMessage("system", system), ChatMessage("user", user)]
        validator = Draft202012Validator(schema)
        problem = ""
        for _ in range(ATTEMPTS):
            text = await self._complete(principal, model, messages, schema)
            try:
                data = json.loads(_json_part(text))
                error = next(iter(validator.iter_errors(data)), None)
                if error is not None:
                    path = "/".join(str(p) for p in error.absolute_path) or "answer"
                    raise ValueError(f"{path}: {error.message}")
                return parse(data)
            except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                problem = _short(exc)
            messages = [*messages, ChatMessage("assistant", text[:4000]), ChatMessage(
                "user", f"That answer is not valid ({problem}). Answer again with the JSON only.")]
        raise AppError(PROVIDER_ERROR,
                       f"the model did not return a valid answer after {ATTEMPTS} tries: {problem}")

    async def _complete(
        self, principal: Principal, model: str | None, messages: list[ChatMessage],
        schema: dict[str, Any],
    ) -> str:
        params = ChatParams(temperature=0, max_tokens=self._max_tokens, json_schema=schema)
        async with self._completions.open(principal.user_id, model,
                                          kind="prompt_compiler") as run:
            run.start(messages, params)
            async for _ in run.events:
                pass
            return run.text


def _json_part(text: str) -> str:
    """The JSON object in an answer (models sometimes wrap it in prose or a code fence)."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return f"{where}: {first['msg']}"[:300]
    return str(exc)[:300]
