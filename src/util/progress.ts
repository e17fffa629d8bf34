/**
 * A progress bar on stderr for long loads and transfers (cli-progress), or nothing when there is
 * no terminal to draw on, so logs and pipes stay clean.
 */
import cliProgress from 'cli-progress';

/** Reports progress of a byte count towards a total. */
export class ProgressReporter {
  private readonly bar: cliProgress.SingleBar | undefined;

  /** Draws a bar titled `title` when given; silent when `title` is undefined. */
  constructor(title: string | undefined, total: number) {
    if (title === undefined || total <= 0) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `${title} [{bar}] {percentage}% {value_h}/{total_h}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? String(v) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0, { value_h: mib(0), total_h: mib(total) });
  }

  /** Sets the amount done. */
  update(done: number): void {
    this.bar?.update(done, { value_h: mib(done) });
  }

  /** Removes the bar. */
  stop(): void {
    this.bar?.stop();
  }
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
