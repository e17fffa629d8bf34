/**
 * A prompt worker (a worker thread): renders chat templates and tokenizes prompts for the server,
 * so that neither a long prompt nor a model's template (code from whoever made the file) holds up
 * the server's event loop. It reads the tokenizer and template from the model file itself.
 * Protocol: see prompt-workers.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { chatText, modelChatTemplate } from '../engine/chat.js';
import { Metadata } from '../gguf/metadata.js';
import { readGguf } from '../gguf/reader.js';
import { tokenizerFromGguf } from '../tokenizer/index.js';
import { CairnError, isCairnError } from '../util/errors.js';
import { checkPromptBytes, promptByteLimit } from './prompt-bounds.js';
import type { PromptJob, PromptWorkerData, WorkerMessage } from './prompt-workers.js';

const data = workerData as PromptWorkerData;
const port = parentPort!;
const file = readGguf(data.path);
const tokenizer = tokenizerFromGguf(file);
const model = { file, tokenizer };
const byteLimit = promptByteLimit(tokenizer, data.ctx);

/** The template's source, for the server to recognize its tool-call syntax (even if it fails to compile). */
function templateSource(): string | undefined {
  try {
    return modelChatTemplate(model).source;
  } catch {
    return new Metadata(file).string('tokenizer.chat_template');
  }
}

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function tokenize(text: string, plain = false, uncapped = false): Int32Array {
  if (!uncapped) checkPromptBytes(text, byteLimit, data.ctx);
  const ids = Int32Array.from(tokenizer.encode(text, { addSpecial: !plain, parseSpecial: !plain }));
  if (!uncapped && ids.length >= data.ctx) {
    throw new CairnError(
      'CONTEXT_FULL',
      `the prompt has ${ids.length} tokens but the context holds ${data.ctx}; shorten it or raise --ctx`,
    );
  }
  return ids;
}

port.on('message', (job: PromptJob) => {
  try {
    let text: string;
    let plain = false;
    let uncapped = false;
    if (job.kind === 'chat') {
      // A continuation is tokenized with the conversation, as the model would read its own answer.
      text = chatText(model, job.messages, { tools: job.tools, variables: job.variables, budget: data.budget }) + (job.continuation ?? '');
      post({ type: 'rendered', id: job.id });
    } else {
      text = job.text;
      plain = job.plain === true;
      uncapped = job.uncapped === true;
    }
    const ids = tokenize(text, plain, uncapped);
    post({ type: 'done', id: job.id, ids }, [ids.buffer as ArrayBuffer]);
  } catch (err) {
    // The template's own failures are TEMPLATE_ERRORs; a stack overflow outside them comes from
    // the request's values (tool-call arguments, template variables) being handed to the template
    // engine, which converts them recursively: the request is nested too deeply, a 400.
    if (err instanceof RangeError && /call stack/i.test(err.message)) {
      post({ type: 'failed', id: job.id, code: 'BAD_ARGUMENT', message: 'the request holds a value nested too deeply to render into the prompt' });
      return;
    }
    post({ type: 'failed', id: job.id, code: isCairnError(err) ? err.code : undefined, message: (err as Error)?.message ?? String(err) });
  }
});

post({ type: 'ready', templateSource: templateSource(), byteLimit });
