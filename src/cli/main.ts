/**
 * The `cairn` command line: one file per command, registered here. Errors cairn raises on purpose,
 * and system errors a user causes (user-errors.ts), print as one line with what to do; anything
 * else prints its stack, since it is a bug.
 */
import { Command, CommanderError } from 'commander';
import { isCairnError } from '../util/errors.js';
import { userErrorLine } from './user-errors.js';
import { generateCommand } from './generate.js';
import { chatCommand } from './chat.js';
import { inspectCommand } from './inspect.js';
import { serveCommand } from './serve.js';
import { benchCommand } from './bench.js';
import { nodeCommand } from './node.js';
import { clusterCommand } from './cluster.js';
import { planCommand } from './plan.js';
import { pullCommand } from './pull.js';
import { lsCommand, rmCommand } from './models.js';
import { readFileSync } from 'node:fs';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Builds the program with every command. */
export function buildProgram(): Command {
  const program = new Command('cairn')
    .description('Run language models on the machines you own: generate, chat, serve, cluster.')
    .version(version())
    .showHelpAfterError('(run with --help for usage)');
  program.addCommand(generateCommand());
  program.addCommand(chatCommand());
  program.addCommand(inspectCommand());
  program.addCommand(serveCommand());
  program.addCommand(benchCommand());
  program.addCommand(nodeCommand());
  program.addCommand(clusterCommand());
  program.addCommand(planCommand());
  program.addCommand(pullCommand());
  program.addCommand(lsCommand());
  program.addCommand(rmCommand());
  return program;
}

/** Runs the CLI with process.argv-style arguments. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const line = isCairnError(err) ? err.message : userErrorLine(err);
    if (line !== undefined) {
      process.stderr.write(`cairn: ${line}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}
