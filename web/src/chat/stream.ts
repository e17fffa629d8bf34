/**
 * One streamed reply from POST /v1/chat/completions: text pieces as they come, then the token
 * counts (stream_options.include_usage) and the measured speed. Aborting the signal stops it.
 */
import { apiFetch } from '../api';
import { readSse } from '../sse';
import type { Conversation, ReplyStats } from './store';

interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string };
}

/** Streams the assistant's reply to `c`'s messages; `onText` gets the whole text so far. */
export async function streamReply(
  model: string,
  c: Conversation,
  onText: (text: string) => void,
  signal: AbortSignal,
): Promise<ReplyStats> {
  const messages = [
    ...(c.system.trim() ? [{ role: 'system', content: c.system }] : []),
    ...c.messages.map((m) => ({ role: m.role, content: m.content })),
  ];
  const t0 = performance.now();
  const r = await apiFetch('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true }, ...c.sampling }),
    signal,
  });
  let text = '';
  let first: number | undefined;
  let last = t0;
  let pieces = 0;
  let usage: Chunk['usage'];
  await readSse(r, (_name, data) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as Chunk;
    if (chunk.error) throw new Error(chunk.error.message ?? 'the server reported an error');
    const piece = chunk.choices?.[0]?.delta?.content;
    if (piece) {
      first ??= performance.now();
      last = performance.now();
      pieces++;
      text += piece;
      onText(text);
    }
    if (chunk.usage) usage = chunk.usage;
  });
  const completion = usage?.completion_tokens ?? pieces;
  const seconds = first !== undefined ? (last - first) / 1000 : 0;
  return {
    promptTokens: usage?.prompt_tokens,
    completionTokens: completion,
    tokensPerSecond: seconds > 0 && completion > 1 ? (completion - 1) / seconds : undefined,
    ttftMs: first !== undefined ? first - t0 : undefined,
  };
}
