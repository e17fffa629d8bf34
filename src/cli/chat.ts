/**
 * `cairn chat`: an interactive chat in the terminal using the model's chat template. Each turn
 * re-renders the whole conversation; the engine's prompt cache finds the shared prefix, so only
 * the new turn is read by the model.
 */
import { resolveModelArg } from './model-arg.js';
import { Command } from 'commander';
import { createInterface } from 'node:readline';
import { loadModel } from '../engine/load.js';
import { addModelOptions, addSamplingOptions, addSpeculationOptions, backendOptions, intArg, samplerOptions, type SamplingFlags, type SpeculationFlags, kvTypeOf } from './options.js';
import { chatPrompt, type ChatMessage } from '../engine/chat.js';
import type { GenerationEvent } from '../engine/engine.js';
import { isCairnError } from '../util/errors.js';
import { BUILTIN_TEMPLATE_NAMES } from '../tokenizer/chat/index.js';

interface ChatFlags extends SamplingFlags, SpeculationFlags {
  model: string;
  threads?: number;
  ctx?: number;
  kvType: string;
  backend: string;
  gpuLayers?: number;
  system?: string;
  nPredict: number;
  template?: string;
}

/** The chat command. */
export function chatCommand(): Command {
  const cmd = new Command('chat').description('Chat with a model in the terminal (/reset clears the conversation, /exit or Ctrl+D quits, Ctrl+C stops a reply)');
  addModelOptions(cmd);
  cmd
    .option('--system <text>', 'system message')
    .option('-n, --n-predict <n>', 'most tokens per reply', intArg(1), 1024)
    .option('--template <name>', `use a built-in chat template (${BUILTIN_TEMPLATE_NAMES.join(', ')}) instead of the file's`);
  addSamplingOptions(cmd);
  addSpeculationOptions(cmd);
  cmd.action(async (o: ChatFlags) => {
    o.model = (await resolveModelArg(o.model)).path;
    const draftModel = o.draftModel ? (await resolveModelArg(o.draftModel, { option: '--draft-model' })).path : undefined;
    const model = await loadModel(o.model, {
      threads: o.threads,
      ctx: o.ctx,
      kvType: kvTypeOf(o.kvType),
      ...backendOptions(o),
      speculation: { maxDraft: o.draftMax, draftModel },
    });
    if (model.placement.note) process.stderr.write(`cairn: ${model.placement.note}\n`);
    // In a terminal, readline echoes what is typed, edits the line and keeps a history (up/down);
    // with piped input it only reads lines.
    const tty = process.stdin.isTTY === true && process.stdout.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty, historySize: 200, prompt: '> ' });
    const messages: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
    let current: AbortController | undefined;
    rl.on('SIGINT', () => {
      if (current) current.abort();
      else rl.close();
    });
    process.stderr.write(`${model.config.name}: ${model.config.nLayer} layers loaded. Type a message; /exit quits.\n`);
    const prompt = () => (tty ? rl.prompt() : process.stdout.write('> '));
    try {
      prompt();
      // Iterating the lines (rather than asking a question per turn) also works for piped input,
      // where lines can arrive before the reply to the previous one is done.
      for await (const line of rl) {
        const text = line.trim();
        if (text === '/exit' || text === '/quit') break;
        if (text === '/reset') {
          messages.splice(o.system ? 1 : 0);
          process.stderr.write('(conversation cleared)\n');
        } else if (text !== '') {
          messages.push({ role: 'user', content: text });
          const ids = chatPrompt(model, messages, { template: o.template });
          current = new AbortController();
          let reply = '';
          let events: AsyncIterable<GenerationEvent>;
          try {
            events = model.engine.generate({ prompt: ids, maxTokens: o.nPredict, sampler: samplerOptions(o), signal: current.signal });
          } catch (err) {
            // The conversation outgrew the context (or the message was refused): say so and keep the session.
            if (!isCairnError(err)) throw err;
            messages.pop();
            current = undefined;
            process.stderr.write(`(${err.message}${isCairnError(err, 'CONTEXT_FULL') ? '; /reset starts a new conversation' : ''})\n`);
            prompt();
            continue;
          }
          for await (const ev of events) {
            if (ev.type === 'done') {
              if (ev.summary.error) process.stderr.write(`\n(error: ${ev.summary.error.message})`);
              if (ev.summary.finishReason === 'abort') process.stderr.write('\n(stopped)');
              break;
            }
            reply += ev.text;
            process.stdout.write(ev.text);
          }
          current = undefined;
          process.stdout.write('\n');
          messages.push({ role: 'assistant', content: reply });
        }
        prompt();
      }
    } finally {
      rl.close();
      model.close();
    }
  });
  return cmd;
}
