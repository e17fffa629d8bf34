/**
 * A progress bar on stderr for long loads and transfers (cli-progress), or nothing when there is
 * no terminal to draw on, so logs and pipes stay clean. The bar shows bytes done of the total and
 * the rate; it is drawn from the first update (so a line logged just before it stays whole) and
 * erased when stopped, after which updates draw nothing (a transfer's last callbacks may come
 * after it ended).
 */
import cliProgress from 'cli-progress';

/** Reports progress of a byte count towards a total. */
export class ProgressReporter {
  private bar: cliProgress.SingleBar | undefined;
  private total: number;
  private stopped: boolean;
  private t0 = 0;

  /**
   * Draws a bar titled `title` when given; silent when `title` is undefined. `total` may be 0 when
   * it is known only once the work starts (then each update gives it).
   */
  constructor(
    private readonly title: string | undefined,
    total = 0,
  ) {
    this.total = total;
    this.stopped = title === undefined;
  }

  /** Sets the bytes done (and the total, where it is known only now). */
  update(done: number, total?: number): void {
    if (this.stopped) return;
    if (total !== undefined && total > 0) this.total = total;
    if (this.total <= 0) return;
    if (!this.bar) {
      this.t0 = performance.now();
      this.bar = new cliProgress.SingleBar(
        {
          format: `${this.title} [{bar}] {percentage}% {value_h} of {total_h} {rate_h} {eta_h}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          // Redraws at most 10 times a second: a fast transfer's callbacks do not flood the terminal.
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.total, 0, { value_h: formatMiB(0), total_h: formatMiB(this.total), rate_h: '', eta_h: '' });
    }
    const seconds = (performance.now() - this.t0) / 1000;
    const perSecond = seconds > 0.2 ? done / seconds : 0;
    const rate = perSecond > 0 ? `${formatMiB(perSecond)}/s` : '';
    const eta = perSecond > 0 && done < this.total ? `${formatDuration((this.total - done) / perSecond)} left` : '';
    this.bar.setTotal(this.total);
    this.bar.update(Math.min(done, this.total), { value_h: formatMiB(done), total_h: formatMiB(this.total), rate_h: rate, eta_h: eta });
  }

  /** Erases the bar; later updates draw nothing. */
  stop(): void {
    this.stopped = true;
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Bytes in MiB (or GiB past 1 GiB), for a bar's figures. */
export function formatMiB(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

/** Seconds as "42s", "3m05s" or "1h02m", for a bar's time left. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
