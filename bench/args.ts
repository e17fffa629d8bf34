/** Command-line flags of the bench scripts: `--name value` pairs after the positional arguments. */

/** The value after `--name` in argv, else `fallback`. */
export function flag(argv: readonly string[], name: string, fallback: string): string;
export function flag(argv: readonly string[], name: string): string | undefined;
export function flag(argv: readonly string[], name: string, fallback?: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
}
