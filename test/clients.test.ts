/**
 * The clients people already use, unchanged, against a real `cairn serve`: the ollama JS client
 * (chat, generate, streaming, list/show/ps, errors it can print), LangChain JS's ChatOpenAI
 * (invoke, stream, tool calls, configured with another model's name), and the official Python
 * `openai` client where python3 has it (skipped, saying why, where it cannot be installed). Each
 * answer is compared with what the server's OpenAI route gives for the same request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, SystemMessage } from '@langchain/core/messages';
import { z } from 'zod';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('clients');
const modelPath = join(dir, 'tiny.gguf');
// A template that renders tools and tool calls in Hermes' <tool_call> syntax, as many models' do.
const TEMPLATE =
  '{%- if tools %}tools: {{ tools | tojson }}\n{%- endif %}' +
  '{%- for m in messages %}{{ m.role }}: {{ m.content or "" }}' +
  '{%- if m.tool_calls %}{%- for c in m.tool_calls %}<tool_call>{{ {"name": c.function.name, "arguments": c.function.arguments} | tojson }}</tool_call>{%- endfor %}{%- endif %}\n{%- endfor %}' +
  '{%- if add_generation_prompt %}assistant:{%- endif %}';
let server: ServerProcess;
let openai: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath, TEMPLATE);
  server = await startServer(['-m', modelPath, '--ctx', '1024']);
  await server.ready();
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The OpenAI chat route's greedy answer to one user message. */
async function reference(content: string, max = 8): Promise<string> {
  const r = await openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens: max, temperature: 0 });
  return r.choices[0].message.content ?? '';
}

test('ollama JS: chat and generate (whole and streamed) answer as the OpenAI route; list, show, ps; errors print as text', async () => {
  const ollama = new Ollama({ host: server.url });
  const want = await reference('Why is the sky blue?');
  const chat = await ollama.chat({ model: 'tiny:latest', messages: [{ role: 'user', content: 'Why is the sky blue?' }], options: { temperature: 0, num_predict: 8 } });
  assert.equal(chat.message.content, want);
  assert.equal(chat.done, true);
  assert.ok(chat.eval_count > 0 && chat.prompt_eval_count >= 0);
  let streamed = '';
  let last: { done: boolean } | undefined;
  for await (const part of await ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'Why is the sky blue?' }], options: { temperature: 0, num_predict: 8 }, stream: true })) {
    streamed += part.message.content;
    last = part;
  }
  assert.equal(streamed, want);
  assert.equal(last?.done, true);
  const gen = await ollama.generate({ model: 'tiny', prompt: 'Why is the sky blue?', options: { temperature: 0, num_predict: 8 } });
  assert.equal(gen.response, want, 'generate renders the prompt with the chat template, as Ollama does');
  assert.ok(Array.isArray(gen.context) && gen.context.length > 0);
  const list = await ollama.list();
  assert.equal(list.models[0].name, 'tiny');
  const show = await ollama.show({ model: 'tiny' });
  assert.ok(show.capabilities.includes('tools'));
  assert.match(show.parameters, /num_ctx 1024/);
  assert.equal((await ollama.ps()).models[0].name, 'tiny');
  // An error is a string the client prints, not [object Object].
  await assert.rejects(
    ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], options: { temperature: 5 } }),
    // The client's ResponseError: the server's `error` string as its message, and the status.
    (err: Error & { error?: unknown; status_code?: number }) => err.name === 'ResponseError' && err.status_code === 400 && /temperature/.test(String(err.error)) && !/object Object/.test(err.message),
  );
});

test("LangChain JS ChatOpenAI, configured with another model's name: invoke, stream, and a tool call", async () => {
  const llm = new ChatOpenAI({ model: 'gpt-4o-mini', apiKey: 'unused', temperature: 0, maxTokens: 8, maxRetries: 0, configuration: { baseURL: `${server.url}/v1` } });
  const want = await reference('Tell me a story.');
  const msg = await llm.invoke([new HumanMessage('Tell me a story.')]);
  assert.equal(msg.content, want);
  assert.equal(msg.response_metadata.model_name, 'gpt-4o-mini', 'the configured name comes back');
  let streamed = '';
  for await (const chunk of await llm.stream([new HumanMessage('Tell me a story.')])) streamed += String(chunk.content);
  assert.equal(streamed, want);
  // A system message reaches the template too: a different prompt, so (almost surely) other tokens counted.
  const withSystem = await llm.invoke([new SystemMessage('Be brief.'), new HumanMessage('Tell me a story.')]);
  assert.ok((withSystem.usage_metadata?.input_tokens ?? 0) > (msg.usage_metadata?.input_tokens ?? 0));
  // Tools as LangChain binds them (a zod schema); a forced choice gives a call with valid arguments
  // (an enum, so that a random-weight model's call ends within its tokens).
  const weather = { name: 'get_weather', description: 'Weather in a city', schema: z.object({ city: z.enum(['Paris', 'Rome', 'Oslo']) }) };
  const withTools = new ChatOpenAI({ model: 'gpt-4o-mini', apiKey: 'unused', temperature: 0.7, maxTokens: 120, maxRetries: 0, configuration: { baseURL: `${server.url}/v1` } }).bindTools([weather], { tool_choice: 'get_weather' });
  const call = await withTools.invoke([new HumanMessage('What is the weather in Paris?')]);
  assert.equal(call.tool_calls?.length, 1, JSON.stringify(call));
  assert.equal(call.tool_calls![0].name, 'get_weather');
  assert.ok(['Paris', 'Rome', 'Oslo'].includes(call.tool_calls![0].args.city as string), JSON.stringify(call.tool_calls));
});

const python = spawnSync('python3', ['-c', 'import openai; print(openai.__version__)'], { encoding: 'utf8' });
const noPython = python.status !== 0 ? "python3's openai package is not installed (Debian has no python3-openai package and PyPI is not reachable here; `pip install openai` to run this test)" : false;

test('the official Python openai client: chat, streamed chat and completions answer as the JS client', { skip: noPython }, async () => {
  const want = await reference('Hello from Python', 6);
  const script = [
    'import json, sys, openai',
    'c = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0)',
    'r = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello from Python"}], max_tokens=6, temperature=0)',
    'm = r.choices[0].message',
    // The assistant message goes back as model_dump() makes it, with the fields the SDK adds.
    'r2 = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello from Python"}, m.model_dump(), {"role": "user", "content": "More"}], max_tokens=4, temperature=0)',
    's = "".join((ch.choices[0].delta.content or "") for ch in c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello from Python"}], max_tokens=6, temperature=0, stream=True) if ch.choices)',
    't = c.completions.create(model="gpt-4o", prompt=["a b", "c d"], max_tokens=3, temperature=0)',
    'print(json.dumps({"chat": m.content, "model": r.model, "again": r2.choices[0].message.content is not None, "stream": s, "texts": [x.text for x in t.choices]}))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', script, `${server.url}/v1`], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { chat: string; model: string; again: boolean; stream: string; texts: string[] };
  assert.equal(out.chat, want);
  assert.equal(out.model, 'gpt-4o');
  assert.equal(out.again, true);
  assert.equal(out.stream, want);
  const texts = await openai.completions.create({ model: 'tiny', prompt: ['a b', 'c d'], max_tokens: 3, temperature: 0 });
  assert.deepEqual(out.texts, texts.choices.map((c) => c.text));
});
