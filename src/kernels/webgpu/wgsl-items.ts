/**
 * WGSL that decodes a weight row in items of 32 weights, for the item products (wgsl-matmul-items.ts):
 * each item is read with whole-word loads (a K-quant's item is 16 bytes of its quants, one word of
 * d and dmin, three of scales; a 32-element block's item is the block), and the lanes of a
 * subgroup take consecutive items, so a subgroup's loads cover consecutive bytes. The per-weight
 * path (wgsl-weights.ts's w4) reloaded the block's scales and its unaligned words for every four
 * weights, which left a real GPU waiting on instructions rather than memory.
 *
 * Each format defines `fn item_w(b: u32, i: u32) -> array<vec4f, 8>`, the weights of item i of the
 * block at byte b (dequantized), and `fn item_x(i: u32, k: u32) -> u32`, the element of the block
 * where the item's vec4 k starts (a multiple of 4).
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import { IQ4_VALUES } from '../reference/quant/layouts.js';

/** A weight type the item products read: elements and bytes of the unit items are counted in, items per unit, WGSL. */
export interface GpuItemFormat {
  /** Elements of the unit (a block; 32 for float types, whose blocks are single elements). */
  readonly unitElems: number;
  readonly unitBytes: number;
  /** Items of 32 weights in a unit. */
  readonly items: number;
  readonly wgsl: string;
}

/** `n` copies of `f(k)` joined by `sep`: loops written out, so that every array index is a constant (a private array indexed at run time lives in slow local memory on a GPU). */
export function unrolled(n: number, f: (k: number) => string, sep = '\n'): string {
  return Array.from({ length: n }, (_, k) => f(k)).join(sep);
}

/** Nibble and byte helpers over words, for the decoders below (need WGSL_WORDS). */
const NIBBLES = /* wgsl */ `
fn bytes4(v: u32) -> vec4f { return vec4f(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu), f32(v >> 24u)); }
fn lo4(v: u32) -> vec4f { return bytes4(v & 0x0f0f0f0fu); }
fn hi4(v: u32) -> vec4f { return bytes4((v >> 4u) & 0x0f0f0f0fu); }
fn contiguous_x(i: u32, k: u32) -> u32 { return 4u * k; }
`;

/** An item_w returning `vecs` (eight WGSL expressions) after `head` (WGSL statements). */
function itemW(head: string, vecs: string[]): string {
  return /* wgsl */ `
fn item_w(b: u32, i: u32) -> array<vec4f, 8> {
${head}
  return array<vec4f, 8>(${vecs.join(', ')});
}`;
}

const Q8_0 = /* wgsl */ `
${itemW('  let d = f16_at(b);', Array.from({ length: 8 }, (_, k) => `d * i8x4(word_at(b + ${2 + 4 * k}u))`))}
fn item_x(i: u32, k: u32) -> u32 { return contiguous_x(i, k); }
`;

/**
 * 32-element blocks of nibbles at byte `qs` (low nibbles elements 0-15, high 16-31): its four
 * words v0..v3, the low vec4s `lo(v, k)` and the high ones `hi(v, k)`.
 */
function nibbleBlock(head: string, qs: number, lo: (v: string, k: number) => string, hi: (v: string, k: number) => string): string {
  const words = unrolled(4, (k) => `  let v${k} = word_at(b + ${qs + 4 * k}u);`);
  return `${itemW(`${head}\n${words}`, [...Array.from({ length: 4 }, (_, k) => lo(`v${k}`, k)), ...Array.from({ length: 4 }, (_, k) => hi(`v${k}`, k))])}
fn item_x(i: u32, k: u32) -> u32 { return contiguous_x(i, k); }
`;
}

const Q4_0 = nibbleBlock('  let d = f16_at(b);', 2, (v) => `d * (lo4(${v}) - 8.0)`, (v) => `d * (hi4(${v}) - 8.0)`);
const Q4_1 = nibbleBlock('  let d = f16_at(b);\n  let m = f16_at(b + 2u);', 4, (v) => `d * lo4(${v}) + m`, (v) => `d * hi4(${v}) + m`);

/** Q5: the fifth bits of elements j..j+3 (bits j.. of qh), as 16s. */
const Q5_BITS = /* wgsl */ `
fn bit16(qh: u32, j: u32) -> vec4f { return vec4f(((vec4u(qh) >> (vec4u(j) + vec4u(0u, 1u, 2u, 3u))) & vec4u(1u)) << vec4u(4u)); }
`;
const Q5_0 =
  Q5_BITS +
  nibbleBlock('  let d = f16_at(b);\n  let qh = word_at(b + 2u);', 6, (v, k) => `d * (lo4(${v}) + bit16(qh, ${4 * k}u) - 16.0)`, (v, k) => `d * (hi4(${v}) + bit16(qh, ${16 + 4 * k}u) - 16.0)`);
const Q5_1 =
  Q5_BITS +
  nibbleBlock('  let d = f16_at(b);\n  let m = f16_at(b + 2u);\n  let qh = word_at(b + 4u);', 8, (v, k) => `d * (lo4(${v}) + bit16(qh, ${4 * k}u)) + m`, (v, k) => `d * (hi4(${v}) + bit16(qh, ${16 + 4 * k}u)) + m`);

/** MXFP4's E2M1 codes as ggml's doubled integers, and its E8M0 scale halved (ggml_e8m0_to_fp32_half). */
const MXFP4 = /* wgsl */ `
fn mxv(q: u32) -> f32 {
  // 0, 1, 2, 3, 4, 6, 8, 12 for codes 0-7 (a constant table indexed at run time would sit in local memory).
  let m = q & 7u;
  let v = select(f32(m), f32(4u << ((m - 4u) >> 1u)) * select(1.0, 1.5, (m & 1u) == 1u), m >= 4u);
  return select(v, -v, q >= 8u);
}
fn mx_half(b: u32) -> f32 { let e = byte_at(b); return bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u)); }
fn mx4(v: u32) -> vec4f { return vec4f(mxv(v & 15u), mxv((v >> 8u) & 15u), mxv((v >> 16u) & 15u), mxv((v >> 24u) & 15u)); }
${nibbleBlock('  let d = mx_half(b);', 1, (v) => `d * mx4(${v})`, (v) => `d * mx4(${v} >> 4u)`)}`;

/**
 * IQ4_NL's code values: bytes value + 128 packed four to a word (a constant table indexed at run
 * time would sit in local memory), the word picked by the code's top bits, the byte by its low ones.
 */
const IQ4_WORDS = [0, 1, 2, 3].map((k) => `0x${[0, 1, 2, 3].reduce((w, j) => w + (IQ4_VALUES[4 * k + j] + 128) * 2 ** (8 * j), 0).toString(16)}u`);
const IQ4_NL = /* wgsl */ `
fn iq4v(q: u32) -> f32 {
  let w = select(select(${IQ4_WORDS[0]}, ${IQ4_WORDS[1]}, q >= 4u), select(${IQ4_WORDS[2]}, ${IQ4_WORDS[3]}, q >= 12u), q >= 8u);
  return f32((w >> ((q & 3u) * 8u)) & 0xffu) - 128.0;
}
fn iq4x4(v: u32) -> vec4f { return vec4f(iq4v(v & 15u), iq4v((v >> 8u) & 15u), iq4v((v >> 16u) & 15u), iq4v((v >> 24u) & 15u)); }
${nibbleBlock('  let d = f16_at(b);', 2, (v) => `d * iq4x4(${v})`, (v) => `d * iq4x4(${v} >> 4u)`)}`;

/**
 * K-quants' 6-bit scale and min of sub-block s from their 12 packed bytes, given as three words
 * (ggml's get_scale_min_k4).
 */
const K_SCALE_WORDS = /* wgsl */ `
fn kbyte(s0: u32, s1: u32, s2: u32, j: u32) -> u32 {
  let v = select(select(s2, s1, j < 8u), s0, j < 4u);
  return (v >> ((j & 3u) * 8u)) & 0xffu;
}
fn kscale(s0: u32, s1: u32, s2: u32, j: u32) -> vec2f {
  if (j < 4u) { return vec2f(f32(kbyte(s0, s1, s2, j) & 63u), f32(kbyte(s0, s1, s2, j + 4u) & 63u)); }
  let sc = (kbyte(s0, s1, s2, j + 4u) & 15u) | ((kbyte(s0, s1, s2, j - 4u) >> 6u) << 4u);
  let m = (kbyte(s0, s1, s2, j + 4u) >> 4u) | ((kbyte(s0, s1, s2, j) >> 6u) << 4u);
  return vec2f(f32(sc), f32(m));
}
fn k_item_x(i: u32, k: u32) -> u32 { return 64u * (i >> 1u) + 16u * (i & 1u) + select(4u * k, 16u + 4u * k, k >= 4u); }
`;

/** The common head of Q4_K's and Q5_K's items: pair j's scales times d and dmin (a for the low nibbles, c for the high). */
const K_HEAD = `  let dm = unpack2x16float(word_at(b));
  let s0 = word_at(b + 4u);
  let s1 = word_at(b + 8u);
  let s2 = word_at(b + 12u);
  let j = i >> 1u;
  let lo = kscale(s0, s1, s2, 2u * j);
  let hi = kscale(s0, s1, s2, 2u * j + 1u);
  let a = vec2f(dm.x * lo.x, dm.y * lo.y);
  let c = vec2f(dm.x * hi.x, dm.y * hi.y);`;

/**
 * Q4_K (144 bytes: d, dmin, 12 scale bytes, 128 bytes of quants): item i is half (i & 1) of the
 * quant bytes of pair j = i / 2, whose low nibbles are sub-block 2j and high nibbles 2j + 1.
 */
const Q4_K = /* wgsl */ `
${K_SCALE_WORDS}
${itemW(`${K_HEAD}\n  let q = b + 16u + 32u * j + 16u * (i & 1u);\n${unrolled(4, (k) => `  let v${k} = word_at(q + ${4 * k}u);`)}`, [
  ...Array.from({ length: 4 }, (_, k) => `a.x * lo4(v${k}) - a.y`),
  ...Array.from({ length: 4 }, (_, k) => `c.x * hi4(v${k}) - c.y`),
])}
fn item_x(i: u32, k: u32) -> u32 { return k_item_x(i, k); }
`;

/** Q5_K (176 bytes: d, dmin, 12 scale bytes, 32 bytes of fifth bits, 128 of quants), items as Q4_K's. */
const Q5_K = /* wgsl */ `
${K_SCALE_WORDS}
fn fifth(h: u32, bit: u32) -> vec4f { return bytes4(((h >> bit) & 0x01010101u) << 4u); }
${itemW(
  `${K_HEAD}\n  let q = b + 48u + 32u * j + 16u * (i & 1u);\n  let qh = b + 16u + 16u * (i & 1u);\n${unrolled(4, (k) => `  let v${k} = word_at(q + ${4 * k}u);\n  let h${k} = word_at(qh + ${4 * k}u);`)}`,
  [...Array.from({ length: 4 }, (_, k) => `a.x * (lo4(v${k}) + fifth(h${k}, 2u * j)) - a.y`), ...Array.from({ length: 4 }, (_, k) => `c.x * (hi4(v${k}) + fifth(h${k}, 2u * j + 1u)) - c.y`)],
)}
fn item_x(i: u32, k: u32) -> u32 { return k_item_x(i, k); }
`;

/** Q6_K's four 6-bit values of word pair (low nibbles `a`, high bits `q`) at bit shifts `ls` of a and `hs` of q, less 32. */
function q6Vec(a: string, ls: number, q: string, hs: number, g: string): string {
  return `d * q6s(s0, s1, ${g}) * (bytes4(((${a} >> ${ls}u) & 0x0f0f0f0fu) | (((${q} >> ${hs}u) & 0x03030303u) << 4u)) - 32.0)`;
}

/**
 * Q6_K (210 bytes: 128 of low nibbles, 64 of high bit pairs, 16 signed scales, d): item i covers
 * l in [8q, 8q + 8) (q = i & 3) of half n = i / 4, that is elements 128n + 32m + l for m < 4,
 * one 16-element scale group each.
 */
const Q6_K = /* wgsl */ `
fn q6s(s0: u32, s1: u32, j: u32) -> f32 { return f32(i32(((select(s1, s0, j < 4u) >> ((j & 3u) * 8u)) & 0xffu) << 24u) >> 24); }
${itemW(
  `  let n = i >> 2u;
  let l = 8u * (i & 3u);
  let d = f16_at(b + 208u);
  let s0 = word_at(b + 192u + 8u * n);
  let s1 = word_at(b + 196u + 8u * n);
  let g = l >> 4u;
${unrolled(2, (h) => `  let a${h} = word_at(b + 64u * n + l + ${4 * h}u);\n  let c${h} = word_at(b + 64u * n + 32u + l + ${4 * h}u);\n  let q${h} = word_at(b + 128u + 32u * n + l + ${4 * h}u);`)}`,
  [q6Vec('a0', 0, 'q0', 0, 'g'), q6Vec('a1', 0, 'q1', 0, 'g'), q6Vec('c0', 0, 'q0', 2, 'g + 2u'), q6Vec('c1', 0, 'q1', 2, 'g + 2u'), q6Vec('a0', 4, 'q0', 4, 'g + 4u'), q6Vec('a1', 4, 'q1', 4, 'g + 4u'), q6Vec('c0', 4, 'q0', 6, 'g + 6u'), q6Vec('c1', 4, 'q1', 6, 'g + 6u')],
)}
fn item_x(i: u32, k: u32) -> u32 { return 128u * (i >> 2u) + 32u * (k >> 1u) + 8u * (i & 3u) + 4u * (k & 1u); }
`;

/**
 * Half-float rows in units of 32 elements. F32 rows keep the subgroup product: with an F32 item
 * decoder (32 unaligned-word reads) compiled, lavapipe's LLVM was seen spinning for good on the next
 * pipeline a cluster node compiled, and F32 weights are rare in the files people run.
 */
const F16 = /* wgsl */ `
${itemW('', Array.from({ length: 8 }, (_, k) => `vec4f(unpack2x16float(word_at(b + ${8 * k}u)), unpack2x16float(word_at(b + ${8 * k + 4}u)))`))}
fn item_x(i: u32, k: u32) -> u32 { return contiguous_x(i, k); }
`;

const BF16 = /* wgsl */ `
fn bf2(v: u32) -> vec2f { return vec2f(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xffff0000u)); }
${itemW('', Array.from({ length: 8 }, (_, k) => `vec4f(bf2(word_at(b + ${8 * k}u)), bf2(word_at(b + ${8 * k + 4}u)))`))}
fn item_x(i: u32, k: u32) -> u32 { return contiguous_x(i, k); }
`;

const FORMATS = new Map<GgmlType, GpuItemFormat>([
  [GgmlType.F16, { unitElems: 32, unitBytes: 64, items: 1, wgsl: NIBBLES + F16 }],
  [GgmlType.BF16, { unitElems: 32, unitBytes: 64, items: 1, wgsl: NIBBLES + BF16 }],
  [GgmlType.Q8_0, { unitElems: 32, unitBytes: 34, items: 1, wgsl: NIBBLES + Q8_0 }],
  [GgmlType.Q4_0, { unitElems: 32, unitBytes: 18, items: 1, wgsl: NIBBLES + Q4_0 }],
  [GgmlType.Q4_1, { unitElems: 32, unitBytes: 20, items: 1, wgsl: NIBBLES + Q4_1 }],
  [GgmlType.Q5_0, { unitElems: 32, unitBytes: 22, items: 1, wgsl: NIBBLES + Q5_0 }],
  [GgmlType.Q5_1, { unitElems: 32, unitBytes: 24, items: 1, wgsl: NIBBLES + Q5_1 }],
  [GgmlType.MXFP4, { unitElems: 32, unitBytes: 17, items: 1, wgsl: NIBBLES + MXFP4 }],
  [GgmlType.IQ4_NL, { unitElems: 32, unitBytes: 18, items: 1, wgsl: NIBBLES + IQ4_NL }],
  [GgmlType.Q4_K, { unitElems: 256, unitBytes: 144, items: 8, wgsl: NIBBLES + Q4_K }],
  [GgmlType.Q5_K, { unitElems: 256, unitBytes: 176, items: 8, wgsl: NIBBLES + Q5_K }],
  [GgmlType.Q6_K, { unitElems: 256, unitBytes: 210, items: 8, wgsl: NIBBLES + Q6_K }],
]);

/** The item decoder of a weight type, or undefined where the item products do not read it. */
export function gpuItemFormat(type: GgmlType): GpuItemFormat | undefined {
  return FORMATS.get(type);
}
