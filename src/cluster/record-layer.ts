/**
 * The encrypted record layer under the frames of an open connection. The frame byte stream is cut
 * into records of at most MAX_RECORD_PLAINTEXT bytes, each sealed with AES-256-GCM:
 *
 * ```
 * offset size field
 *  0     1    magic 0xCB (0xCA, a frame's magic, means the peer sent a frame in the clear)
 *  1     1    record format version
 *  2     2    zero
 *  4     4    ciphertext length including the 16-byte tag (u32, little-endian)
 *  8          ciphertext, then the tag
 * ```
 *
 * The 8-byte header is the additional authenticated data. Nonces are a per-direction counter that
 * both ends keep (it never travels), so a replayed, reordered, dropped or altered record fails
 * authentication and the connection closes. Keys are per direction and per connection, and ratchet
 * forward (HKDF) every REKEY_RECORDS records or REKEY_BYTES bytes, well inside AES-GCM's limits on
 * what one key may seal. A record is opened only once it has arrived whole, so no unauthenticated
 * byte ever reaches the frame decoder.
 */

import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { CairnError } from '../util/errors.js';

/** First byte of every record. */
export const RECORD_MAGIC = 0xcb;
/** Version of the record layout. */
export const RECORD_VERSION = 1;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 8;
/** Most plaintext bytes in one record: large enough to amortize a cipher's set-up, small enough to buffer. */
export const MAX_RECORD_PLAINTEXT = 256 * 1024;
/** Bytes of the GCM tag that ends every record. */
export const RECORD_TAG_BYTES = 16;
/** Records sealed with one key before both ends move to the next. */
export const REKEY_RECORDS = 1 << 20;
/** Bytes sealed with one key before both ends move to the next. */
export const REKEY_BYTES = 2 ** 32;

/** When both ends move to the next key (tests use small values; the ends must agree). */
export interface RekeyLimits {
  readonly records: number;
  readonly bytes: number;
}

const DEFAULT_LIMITS: RekeyLimits = { records: REKEY_RECORDS, bytes: REKEY_BYTES };
const CIPHER = 'aes-256-gcm';
const REKEY_LABEL = 'cairn-channel/2 rekey';

/** Key, nonce counter and rekey accounting of one direction. */
class DirectionState {
  private key: Buffer;
  private counter = 0;
  private recordsOnKey = 0;
  private bytesOnKey = 0;
  private readonly nonce = Buffer.alloc(12);

  constructor(
    key: Buffer,
    private readonly limits: RekeyLimits,
  ) {
    this.key = Buffer.from(key);
  }

  /** The nonce of the next record (valid until the next call). */
  nextNonce(): Buffer {
    // 4 zero bytes, then the 64-bit counter (safe as a JS number far beyond any connection's life).
    this.nonce.writeUInt32BE(Math.floor(this.counter / 0x100000000), 4);
    this.nonce.writeUInt32BE(this.counter % 0x100000000, 8);
    this.counter++;
    return this.nonce;
  }

  get current(): Buffer {
    return this.key;
  }

  /** Accounts one record of `bytes` plaintext bytes; moves to the next key at the limits. */
  used(bytes: number): void {
    this.recordsOnKey++;
    this.bytesOnKey += bytes;
    if (this.recordsOnKey >= this.limits.records || this.bytesOnKey >= this.limits.bytes) {
      this.key = Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), REKEY_LABEL, 32));
      this.recordsOnKey = 0;
      this.bytesOnKey = 0;
    }
  }
}

/** Seals outgoing bytes into records. */
export class RecordSealer {
  private readonly state: DirectionState;

  constructor(key: Buffer, limits: RekeyLimits = DEFAULT_LIMITS) {
    this.state = new DirectionState(key, limits);
  }

  /**
   * Seals the concatenation of `parts` (one frame: header, then payload) into records, handing
   * each record's buffers to `emit` as soon as it is sealed (so a large frame goes out while the
   * rest of it is still being sealed). The parts themselves are not modified or kept.
   */
  seal(parts: readonly Buffer[], emit: (record: Buffer[]) => void): void {
    let total = 0;
    for (const p of parts) total += p.length;
    let partIndex = 0;
    let partOffset = 0;
    let left = total;
    do {
      const size = Math.min(left, MAX_RECORD_PLAINTEXT);
      const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
      header[0] = RECORD_MAGIC;
      header[1] = RECORD_VERSION;
      header.writeUInt16LE(0, 2);
      header.writeUInt32LE(size + RECORD_TAG_BYTES, 4);
      const cipher = createCipheriv(CIPHER, this.state.current, this.state.nextNonce());
      cipher.setAAD(header);
      const record = [header];
      let need = size;
      while (need > 0) {
        const part = parts[partIndex];
        const take = Math.min(need, part.length - partOffset);
        if (take > 0) record.push(cipher.update(take === part.length ? part : part.subarray(partOffset, partOffset + take)));
        partOffset += take;
        need -= take;
        if (partOffset === part.length) {
          partIndex++;
          partOffset = 0;
        }
      }
      cipher.final();
      record.push(cipher.getAuthTag());
      this.state.used(size);
      left -= size;
      emit(record);
    } while (left > 0);
  }

  /** The records of `parts` as one list of buffers (tests, and callers that write them together). */
  sealAll(parts: readonly Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    this.seal(parts, (record) => out.push(...record));
    return out;
  }
}

/** What opening a stream chunk found. */
export type OpenResult =
  /** Every complete record was opened; the rest waits for more bytes. */
  | { readonly kind: 'ok' }
  /** At a record boundary the peer sent a cleartext frame instead (its bytes from there are `rest`). */
  | { readonly kind: 'cleartext'; readonly rest: Buffer }
  /** The stream is unreadable or forged; nothing more is accepted. */
  | { readonly kind: 'error'; readonly error: CairnError };

/** Opens incoming records from a byte stream cut anywhere, handing each record's plaintext on. */
export class RecordOpener {
  private readonly state: DirectionState;
  private readonly header = Buffer.alloc(RECORD_HEADER_BYTES);
  private headerFill = 0;
  private body: Buffer | undefined;
  private scratch: Buffer | undefined;
  private bodyFill = 0;
  private failure: CairnError | undefined;
  private opened = 0;

  constructor(
    key: Buffer,
    private readonly onPlaintext: (plaintext: Buffer) => void,
    limits: RekeyLimits = DEFAULT_LIMITS,
  ) {
    this.state = new DirectionState(key, limits);
  }

  /** Records opened so far (0 means the peer has not yet proven its key). */
  get recordsOpened(): number {
    return this.opened;
  }

  /**
   * Consumes a chunk. Exceptions from onPlaintext propagate (the rest of the chunk is then lost,
   * so the stream must be abandoned); opening itself never throws.
   */
  push(chunk: Buffer): OpenResult {
    if (this.failure) return { kind: 'error', error: this.failure };
    let pos = 0;
    while (pos < chunk.length) {
      if (this.body === undefined) {
        if (this.headerFill === 0 && chunk[pos] !== RECORD_MAGIC) {
          if (chunk[pos] === 0xca) return { kind: 'cleartext', rest: chunk.subarray(pos) };
          return this.fail(`bad record magic byte 0x${chunk[pos].toString(16)}`);
        }
        const take = Math.min(RECORD_HEADER_BYTES - this.headerFill, chunk.length - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < RECORD_HEADER_BYTES) break;
        this.headerFill = 0;
        const problem = this.checkHeader();
        if (problem) return this.fail(problem);
        const length = this.header.readUInt32LE(4);
        if (this.bodyFill === 0 && chunk.length - pos >= length) {
          // The whole record is in this chunk: open it in place.
          const result = this.open(chunk.subarray(pos, pos + length));
          pos += length;
          if (result) return result;
          continue;
        }
        // One buffer, reused: a record is opened (and its bytes copied out) before the next arrives.
        this.scratch ??= Buffer.allocUnsafe(MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES);
        this.body = this.scratch.subarray(0, length);
        this.bodyFill = 0;
      }
      const body = this.body;
      const take = Math.min(body.length - this.bodyFill, chunk.length - pos);
      chunk.copy(body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === body.length) {
        this.body = undefined;
        this.bodyFill = 0;
        const result = this.open(body);
        if (result) return result;
      }
    }
    return { kind: 'ok' };
  }

  private checkHeader(): string | undefined {
    const h = this.header;
    if (h[1] !== RECORD_VERSION) return `unsupported record version ${h[1]}`;
    if (h.readUInt16LE(2) !== 0) return 'record header has non-zero reserved bits';
    const length = h.readUInt32LE(4);
    if (length < RECORD_TAG_BYTES || length > MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES) return `record length ${length} is out of range`;
    return undefined;
  }

  /** Authenticates and decrypts one record; returns an error result, or undefined when it went on. */
  private open(record: Buffer): OpenResult | undefined {
    const size = record.length - RECORD_TAG_BYTES;
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv(CIPHER, this.state.current, this.state.nextNonce());
      decipher.setAAD(this.header);
      decipher.setAuthTag(record.subarray(size));
      plaintext = decipher.update(record.subarray(0, size));
      decipher.final();
    } catch {
      return this.fail(
        this.opened === 0
          ? 'the first encrypted record did not authenticate'
          : 'a record did not authenticate (altered, replayed, reordered or dropped on the way)',
        this.opened === 0 ? 'CLUSTER_AUTH' : 'CLUSTER_PROTOCOL',
      );
    }
    this.state.used(size);
    this.opened++;
    if (plaintext.length > 0) this.onPlaintext(plaintext);
    return undefined;
  }

  private fail(why: string, code: 'CLUSTER_AUTH' | 'CLUSTER_PROTOCOL' = 'CLUSTER_PROTOCOL'): OpenResult {
    this.failure = new CairnError(code, why);
    return { kind: 'error', error: this.failure };
  }
}
