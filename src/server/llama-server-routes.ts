/**
 * Routes llama-server's users and tools expect: POST /tokenize and /detokenize (llama-server's
 * shapes: `content`, `add_special`, `with_pieces`; `tokens`), GET /props (the generation defaults,
 * slots, context, chat template) and GET /slots (read-only: each slot's context and whether it is
 * busy). Tokenizing runs in the prompt workers, off the event loop, within the same byte bound as
 * prompts; detokenizing is bounded by the context size.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { badRequest } from './errors.js';
import { parseBody } from './parse-body.js';
import { isTokenId, listOf } from './list-schemas.js';
import type { ModelHost } from './host.js';
import { SAMPLER_DEFAULTS } from '../sampling/options.js';

const tokenizeBody = z.object({
  content: z.string(),
  add_special: z.boolean().optional(),
  with_pieces: z.boolean().optional(),
});

const detokenizeBody = z.object({ tokens: listOf(isTokenId, 'token ids') });


/** Registers /tokenize, /detokenize, /props and /slots. */
export function registerLlamaServerRoutes(app: FastifyInstance, host: ModelHost, version = '0.0.0'): void {
  app.post('/tokenize', async (request) => {
    const body = parseBody(tokenizeBody, request.body);
    const model = host.require();
    let ids = await host.prompts.text(body.content);
    // The workers tokenize as prompts are read (with BOS); llama-server adds it only when asked.
    const bos = model.tokenizer.bosId;
    if (!body.add_special && bos !== undefined && ids[0] === bos) ids = ids.slice(1);
    if (!body.with_pieces) return { tokens: ids };
    return { tokens: ids.map((id) => ({ id, piece: model.tokenizer.decode([id], { skipSpecial: false }) })) };
  });

  app.post('/detokenize', async (request) => {
    const body = parseBody(detokenizeBody, request.body);
    const model = host.require();
    const limit = model.engine.runner.ctxPerSlot;
    if (body.tokens.length > limit) throw badRequest(`${body.tokens.length} tokens are more than the context holds (${limit})`, 'tokens');
    const bad = body.tokens.find((t) => t >= model.tokenizer.vocabSize);
    if (bad !== undefined) throw badRequest(`token ${bad} is outside the vocabulary of ${model.tokenizer.vocabSize}`, 'tokens');
    return { content: model.tokenizer.decode(body.tokens, { skipSpecial: false }) };
  });

  app.get('/props', async () => {
    const model = host.require();
    const runner = model.engine.runner;
    return {
      model_path: host.path,
      model_alias: host.id,
      total_slots: runner.slots,
      n_ctx: runner.ctxPerSlot,
      chat_template: host.prompts.templateSource ?? '',
      default_generation_settings: {
        n_ctx: runner.ctxPerSlot,
        params: {
          temperature: SAMPLER_DEFAULTS.temperature,
          top_k: SAMPLER_DEFAULTS.topK,
          top_p: SAMPLER_DEFAULTS.topP,
          min_p: SAMPLER_DEFAULTS.minP,
          repeat_penalty: SAMPLER_DEFAULTS.repeatPenalty,
          repeat_last_n: SAMPLER_DEFAULTS.repeatLastN,
          presence_penalty: SAMPLER_DEFAULTS.presencePenalty,
          frequency_penalty: SAMPLER_DEFAULTS.frequencyPenalty,
        },
      },
      build_info: `cairn ${version}`,
      // Where the layers run (cairn's own field): the CPU, or a GPU and its adapter.
      backend: { name: model.placement.backend, adapter: model.placement.adapter ?? null, gpu_layers: model.placement.gpuLayers ?? 0 },
    };
  });

  app.get('/slots', async () => {
    const model = host.require();
    return model.engine.slotStates().map((s) => ({ id: s.id, n_ctx: model.engine.runner.ctxPerSlot, is_processing: s.busy, n_cached: s.cached }));
  });
}
