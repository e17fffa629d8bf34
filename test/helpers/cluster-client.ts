/**
 * What the cluster tests ask a `cairn serve --cluster`: a greedy completion (its text, or the error
 * it ended with) and the cluster's status.
 */
import type { ClusterStatus } from '../../src/mesh/coordinator.js';

/** A greedy completion of `n` tokens (end of sequence ignored): status, text and error message. */
export async function complete(url: string, prompt: string, n: number): Promise<{ status: number; text: string; error?: string }> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // The server serves its one model whatever the name.
    body: JSON.stringify({ model: 'cluster', prompt, max_tokens: n, temperature: 0, ignore_eos: true }),
  });
  const j = (await r.json()) as { choices?: { text: string }[]; error?: { message: string } };
  return { status: r.status, text: j.choices?.[0]?.text ?? '', error: j.error?.message };
}

/** GET /v1/cluster. */
export async function status(url: string): Promise<ClusterStatus> {
  return (await (await fetch(`${url}/v1/cluster`)).json()) as ClusterStatus;
}
