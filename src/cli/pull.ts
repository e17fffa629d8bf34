/** `cairn pull`: fetch a GGUF model from the Hugging Face hub into the local store. */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { intArg } from './options.js';
import { checkRunnable, defaultStore, pullProgress } from './model-arg.js';

interface PullFlags {
  connections: number;
  json?: boolean;
  force?: boolean;
}

const HELP = `
Examples:
  cairn pull hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M     a quantization, as Ollama's hf.co/...:TAG
  cairn pull hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF           lists the files the repository offers
  cairn pull hf:owner/repo/path/to/model.gguf               one file by its path
  cairn pull hf:owner/repo@a1b2c3d:Q8_0                     at a revision (branch, tag or commit)

The store is under $CAIRN_HOME (default ~/.cairn). A pull that stops continues where it was when run
again. HF_TOKEN reads gated or private repositories; HF_ENDPOINT names a mirror; HTTPS_PROXY,
HTTP_PROXY and NO_PROXY are honoured.`;

/** The pull command. */
export function pullCommand(): Command {
  return new Command('pull')
    .description('Download a GGUF model from Hugging Face into the local model store')
    .argument('<model>', 'hf:OWNER/REPO[:QUANT | /PATH.gguf]')
    .option('--connections <n>', 'parallel connections per file', intArg(1, 16), 4)
    .option('--json', 'print the stored model as JSON when done')
    .option('--force', 'download even a model cairn cannot run (by default its header is checked first)')
    .addHelpText('after', HELP)
    .action(async (spec: string, o: PullFlags) => {
      const { HubClient } = await import('../store/hub-client.js');
      const { isHubRef, parseHubRef } = await import('../store/hub-ref.js');
      const { ggufChoices, describeChoices } = await import('../store/gguf-choice.js');
      const { pullModel } = await import('../store/pull.js');
      // A file on this machine needs no pull: every command takes its path with -m.
      if (!isHubRef(spec) && (spec.toLowerCase().endsWith('.gguf') || spec.startsWith('/') || spec.startsWith('.')) && existsSync(spec)) {
        throw new CairnError('BAD_ARGUMENT', `${spec} is a file on this machine: it needs no pull; give its path with -m (cairn pull fetches hf:OWNER/REPO models from Hugging Face)`);
      }
      const ref = parseHubRef(isHubRef(spec) ? spec : `hf:${spec}`);
      const client = new HubClient();
      if (!ref.tag && !ref.file) {
        // No tag: list what there is unless there is only one model to take.
        const listing = await client.listRepo(ref.repo, ref.revision);
        const choices = ggufChoices(listing.files);
        if (choices.length !== 1) {
          process.stdout.write(choices.length === 0 ? `${ref.repo} holds no GGUF model files\n` : `${describeChoices(choices)}\n\nPull one with: cairn pull hf:${ref.repo}:TAG\n`);
          if (choices.length === 0) process.exitCode = 1;
          return;
        }
      }
      const progress = pullProgress();
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      try {
        const model = await pullModel(ref, { store: defaultStore(), client, connections: o.connections, onEvent: progress.onEvent, signal: ac.signal, check: o.force ? undefined : checkRunnable });
        progress.stop();
        if (o.json) process.stdout.write(JSON.stringify(model, null, 2) + '\n');
        else process.stdout.write(`${model.name}: ${(model.size / 2 ** 30).toFixed(2)} GiB, ${model.architecture}, ${model.quantization}\n  use it with: cairn serve -m ${model.name}\n`);
      } catch (err) {
        progress.stop();
        if (ac.signal.aborted) {
          process.stderr.write('cairn: pull stopped; run the same command again to continue where it was\n');
          process.exitCode = 130;
          return;
        }
        throw err;
      } finally {
        process.off('SIGINT', stop);
      }
    });
}
