/**
 * How a sequence's tokens were first read: the sizes of the chunks its positions went through
 * forward steps in (a prompt in one or a few chunks, then one token per decode step), run-length
 * encoded. The kernels' rounding depends on how many tokens a step reads at once, so a sequence
 * that resumes on a rebuilt runner reads its tokens again in the same chunks: its KV comes out bit
 * for bit as before and greedy decoding goes on with the tokens it would have had. (Reading a long
 * history one token per step costs a step per token; the engine may choose big chunks instead.)
 */
export class ReadLog {
  /** [chunk size, times] pairs, in order. */
  private readonly runs: [number, number][] = [];
  /** Positions the log covers. */
  private covered = 0;
  /** Chunks in the log. */
  private chunks = 0;
  private run = 0;
  private inRun = 0;
  private cursor = 0;

  /** Positions the log covers (from 0). */
  get length(): number {
    return this.covered;
  }

  /** Chunks in the log: the steps a replay in the same chunks takes. */
  get steps(): number {
    return this.chunks;
  }

  /** Records that the `size` positions after the last recorded ones were read as one chunk. */
  record(size: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last[0] === size) last[1]++;
    else this.runs.push([size, 1]);
    this.covered += size;
    this.chunks++;
  }

  /** Starts reading the log again from position 0: in its chunks when `exact`, else in any (chunkAt says nothing). */
  rewind(exact = true): void {
    this.run = exact ? 0 : this.runs.length;
    this.inRun = 0;
    this.cursor = 0;
  }

  /** The size of the recorded chunk that starts at `pos`, when `pos` is where the replay stands. */
  chunkAt(pos: number): number | undefined {
    if (pos !== this.cursor || this.run >= this.runs.length) return undefined;
    return this.runs[this.run][0];
  }

  /** Moves the replay past the chunk chunkAt() returned. */
  advance(): void {
    const r = this.runs[this.run];
    if (!r) return;
    this.cursor += r[0];
    if (++this.inRun === r[1]) {
      this.run++;
      this.inRun = 0;
    }
  }
}
