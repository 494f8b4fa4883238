// The real `openai` npm package against a live Parlour's /v1 (started by
// tests/test_gateway_node.py, which passes PARLOUR_URL, PARLOUR_KEY and PARLOUR_REVOKED_KEY).
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const baseURL = `${process.env.PARLOUR_URL}/v1`;
const client = new OpenAI({ baseURL, apiKey: process.env.PARLOUR_KEY, maxRetries: 0 });
const HI = [{ role: "user", content: "hi" }];
const FULL = Array.from({ length: 12 }, (_, i) => `word${i} `).join("");
const WEATHER = {
  type: "function",
  function: {
    name: "get_weather", description: "The weather in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

test("models are listed with provider:model ids", async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.ok(ids.includes("scripted:fixed"), ids.join());
});

test("a completion, whole and streamed with usage", async () => {
  const done = await client.chat.completions.create({ model: "scripted:fixed", messages: HI });
  assert.equal(done.choices[0].message.content, FULL);
  assert.equal(done.usage.completion_tokens, 12);

  const stream = await client.chat.completions.create({
    model: "scripted:fixed", messages: HI, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, FULL);
  assert.equal(usage.completion_tokens, 12);
});

test("a tool call round trip", async () => {
  const messages = [{ role: "user", content: "Weather in Paris?" }];
  const first = await client.chat.completions.create({ model: "scripted:tools", messages, tools: [WEATHER] });
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  const call = choice.message.tool_calls[0];
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
  const answer = await client.chat.completions.create({
    model: "scripted:tools", tools: [WEATHER],
    messages: [...messages, choice.message, { role: "tool", tool_call_id: call.id, content: "18C" }],
  });
  assert.equal(answer.choices[0].message.content, "Here is what I found: 18C");
});

test("a provider failing mid-stream makes the stream throw", async () => {
  const stream = await client.chat.completions.create({ model: "scripted:fail", messages: HI, stream: true });
  let text = "";
  await assert.rejects(async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  }, (err) => err instanceof OpenAI.APIError && /upstream returned 502/.test(err.message));
  assert.equal(text, "word0 word1 word2 ");
});

test("errors are the SDK's usual exceptions", async () => {
  await assert.rejects(client.chat.completions.create({ model: "nobody:model", messages: HI }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === "model_not_found");
  await assert.rejects(client.chat.completions.create({ model: "scripted:fixed", messages: [] }),
    (err) => err instanceof OpenAI.BadRequestError && err.param === "messages");
  const revoked = new OpenAI({ baseURL, apiKey: process.env.PARLOUR_REVOKED_KEY, maxRetries: 0 });
  await assert.rejects(revoked.chat.completions.create({ model: "scripted:fixed", messages: HI }),
    (err) => err instanceof OpenAI.AuthenticationError && err.code === "invalid_api_key");
});
