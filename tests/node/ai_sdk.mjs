// An AI SDK provider against the gateway: the default one, openai(model), speaks
// /v1/responses; `anthropic` (the fourth argument), anthropic(model), speaks /v1/messages.
// Usage: node ai_sdk.mjs <base_url> <api_key> <model> [openai|anthropic]; prints one JSON line
// of what came back.
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText, tool, stepCountIs } from "ai";
import { z } from "zod";

const [baseURL, apiKey, model, kind = "openai"] = process.argv.slice(2);
globalThis.AI_SDK_LOG_WARNINGS = false;  // unknown model names only warn
const openai = (kind === "anthropic" ? createAnthropic : createOpenAI)({ baseURL, apiKey });
const calls = [];
const tools = {
  get_weather: tool({
    description: "The weather in a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; },
  }),
};

const plain = await generateText({ model: openai(model), prompt: "hi" });
const streamed = streamText({ model: openai(model), prompt: "hi" });
let streamedText = "";
for await (const part of streamed.textStream) streamedText += part;
const agent = await generateText({
  model: openai(model), prompt: "What is the weather in Paris?", tools, stopWhen: stepCountIs(3),
});
console.log(JSON.stringify({
  text: plain.text, streamed: streamedText, agent: agent.text, calls,
  steps: agent.steps.length, usage: plain.usage,
}));
