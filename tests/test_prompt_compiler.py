"""The prompt compiler: valid answers, one retry on invalid output, then provider_error;
its form is a valid JSON Schema; an empty prompt is refused; the embedded model answers
something valid or a clear error."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from app.llm.base import ChatMessage, ChatParams, StreamEnd, StreamEvent, TextDelta, TokenUsage
from app.llm.openai_compat import OpenAICompatProvider
from tests.client import Parlour, start_parlour

COMPILED = {
    "compiled_prompt": "Write a {{tone}} poem about {{topic}} in {{lines}} lines.",
    "parameters": [
        {"name": "tone", "description": "the mood", "type": "enum", "default": "happy",
         "options": ["happy", "sad"]},
        {"name": "topic", "description": "what it is about", "type": "string",
         "default": "the sea"},
        {"name": "lines", "description": "how long", "type": "number", "default": 4},
    ],
}


class Answers:
    """A provider that answers each call with the next scripted text, recording prompts."""

    name = "answers"

    def __init__(self) -> None:
        self.script: list[str] = []
        self.prompts: list[list[ChatMessage]] = []
        self.params: list[ChatParams] = []

    @property
    def available(self) -> bool:
        return True

    async def stream_chat(
        self, messages: Sequence[ChatMessage], model: str, params: ChatParams
    ) -> AsyncIterator[StreamEvent]:
        self.prompts.append(list(messages))
        self.params.append(params)
        text = self.script.pop(0)
        for start in range(0, len(text), 20):
            yield TextDelta(text[start : start + 20])
        yield StreamEnd(TokenUsage(30, 20), "stop")

    async def close(self) -> None:
        return None


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
async def server(make_settings: Any, answers: Answers) -> AsyncIterator[Parlour]:
    server = await start_parlour(make_settings(llm__default_model="answers:json"),
                                 providers={"answers": answers})
    yield server
    await server.close()


PROMPT = "Write a happy poem about the sea in 4 lines."


async def test_compile_and_its_form(server: Parlour, answers: Answers) -> None:
    user = await server.signup()
    answers.script = [json.dumps(COMPILED), "Sure! " + json.dumps(COMPILED)]
    status, data = await server.request("POST", "/api/v1/prompt_compiler/compile", user,
                                        json={"prompt": PROMPT})
    assert status == 200, data
    assert data == COMPILED
    assert answers.params[0].json_schema is not None  # structured output was asked for
    assert PROMPT in answers.prompts[0][-1].content

    status, data = await server.request("POST", "/api/v1/prompt_compiler/compile/form", user,
                                        json={"prompt": PROMPT, "modelid": "answers:json"})
    assert status == 200, data
    form = data.pop("form")
    assert data == COMPILED
    Draft202012Validator.check_schema(form)
    validator = Draft202012Validator(form)
    assert validator.is_valid({"tone": "sad", "topic": "rain", "lines": 8})
    assert not validator.is_valid({"tone": "angry"})
    assert form["properties"]["tone"]["enum"] == ["happy", "sad"]
    assert form["properties"]["lines"]["type"] == "number"

    status, metrics = await server.request("GET", "/api/v1/metrics", user)
    assert status == 200 and metrics  # the calls were recorded as the user's usage


async def test_invalid_output_is_asked_again_once_then_provider_error(
    server: Parlour, answers: Answers,
) -> None:
    user = await server.signup()
    broken = dict(COMPILED, compiled_prompt="Write a poem about {{subject}}.")
    answers.script = ["not json at all", json.dumps(COMPILED)]
    status, data = await server.request("POST", "/api/v1/prompt_compiler/compile", user,
                                        json={"prompt": PROMPT})
    assert status == 200 and data == COMPILED, data
    retry = answers.prompts[1][-1]
    assert retry.role == "user" and "not valid" in retry.content

    answers.script = [json.dumps(broken), json.dumps({"compiled_prompt": "x"})]
    status, data = await server.request("POST", "/api/v1/prompt_compiler/compile", user,
                                        json={"prompt": PROMPT})
    assert status == 502 and data["error"]["code"] == "provider_error", data
    assert "2 tries" in data["error"]["message"]
    assert len(answers.prompts) == 4


async def test_empty_prompt_is_refused_before_the_model(server: Parlour, answers: Answers) -> None:
    user = await server.signup()
    for path in ("compile", "compile/form"):
        status, data = await server.request("POST", f"/api/v1/prompt_compiler/{path}", user,
                                            json={"prompt": "   "})
        assert status == 422 and data["error"]["code"] == "invalid_payload", data
    status, data = await server.request("POST", "/api/v1/prompt_compiler/update_parameters",
                                        user, json={"prompt": "", "text": "x"})
    assert status == 422 and "prompt" in data["error"]["message"]
    assert answers.prompts == []


async def test_update_parameters_reads_values_from_text(server: Parlour, answers: Answers) -> None:
    user = await server.signup()
    answers.script = [json.dumps({"values": {"tone": "sad", "topic": "rain", "lines": None}})]
    status, data = await server.request("POST", "/api/v1/prompt_compiler/update_parameters", user,
                                        json={"prompt": COMPILED["compiled_prompt"],
                                              "text": "something sad about rain",
                                              "parameters": COMPILED["parameters"]})
    assert status == 200, data
    # A value the text does not give keeps the parameter's default.
    assert data == {"values": {"tone": "sad", "topic": "rain", "lines": 4}}

    answers.script = [json.dumps({"values": {"tone": "angry"}})] * 2
    status, data = await server.request("POST", "/api/v1/prompt_compiler/update_parameters", user,
                                        json={"prompt": COMPILED["compiled_prompt"],
                                              "text": "angry", "parameters": COMPILED["parameters"]})
    assert status == 502 and data["error"]["code"] == "provider_error", data


async def test_the_embedded_model_answers_valid_json_or_a_clear_error(
    make_settings: Any, local_provider: OpenAICompatProvider,
) -> None:
    # Answers are bounded (the demo model is slow on a shared CPU); cut short, they are
    # invalid JSON, which must come back as a clear provider_error after one retry.
    server = await start_parlour(make_settings(assistant__max_output_tokens=24),
                                 providers={"local": local_provider})
    try:
        user = await server.signup()
        status, data = await server.request(
            "POST", "/api/v1/prompt_compiler/compile/form", user,
            json={"prompt": PROMPT, "modelid": "local:smollm2"})
        if status == 200:
            names = {p["name"] for p in data["parameters"]}
            assert set(re.findall(r"\{\{\s*(\w+)\s*\}\}", data["compiled_prompt"])) == names
            Draft202012Validator.check_schema(data["form"])
        else:
            assert status == 502 and data["error"]["code"] == "provider_error", data
            assert "valid answer" in data["error"]["message"]
    finally:
        await server.close()
