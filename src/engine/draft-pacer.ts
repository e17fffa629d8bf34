/**
 * How long a sequence's drafts are, adapted to how many were accepted: longer while whole drafts
 * pass, shorter after a miss, and none for a while after drafts that were wholly rejected (waiting
 * longer after each such miss), so text that does not repeat costs almost nothing.
 */

/** Steps a sequence waits at most before drafting again after wholly rejected drafts. */
const MAX_WAIT = 32;

/** Draft length of one sequence. */
export class DraftPacer {
  private length: number;
  private misses = 0;
  private wait = 0;

  constructor(private readonly max: number) {
    this.length = Math.min(max, 4);
  }

  /** Tokens to draft at this step (0: not this step). */
  next(): number {
    if (this.max <= 0) return 0;
    if (this.wait > 0) {
      this.wait--;
      return 0;
    }
    return this.length;
  }

  /** How a verified draft went. */
  record(drafted: number, accepted: number): void {
    if (drafted <= 0) return;
    if (accepted >= drafted) this.length = Math.min(this.max, this.length + 2);
    else this.length = Math.max(1, Math.min(this.length - 1, accepted + 1));
    if (accepted === 0) {
      this.misses++;
      this.wait = Math.min(MAX_WAIT, 2 ** this.misses - 1);
    } else {
      this.misses = 0;
    }
  }
}
