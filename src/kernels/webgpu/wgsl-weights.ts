/**
 * WGSL that reads GGUF weights in place, in their block layout: a weight buffer is an array of u32
 * holding the file's bytes, and each type has a `block_dot(b, xo)` that returns the dot product of
 * the block at byte offset b with the f32 activations x[xo ..]. Blocks of Q8_0 (34 bytes), Q4_0
 * and IQ4_NL (18), Q6_K (210) and MXFP4 (17) start at any byte, so words are read unaligned (two loads and a shift).
 * Float types are "blocks" of one element, so any row length works.
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import { IQ4_VALUES as IQ4_CODE_VALUES } from '../reference/quant/layouts.js';

/** A weight type the GPU kernels read: elements per block, bytes per block, and its WGSL. */
export interface GpuWeightFormat {
  readonly blockElems: number;
  readonly blockBytes: number;
  /** WGSL defining `fn block_dot(b: u32, xo: u32) -> f32` over bindings `w` and `x`. */
  readonly wgsl: string;
  /**
   * For block types: WGSL defining `fn w4(b: u32, i: u32) -> vec4f`, the weights i..i+3 of the block
   * at byte b (i a multiple of 4), which the multi-token product decodes once for several tokens.
   */
  readonly w4?: string;
}

/** Byte, half and signed-byte readers over `w: array<u32>` (no activations: kernels that bind them otherwise use these alone). */
export const WGSL_WORDS = /* wgsl */ `
fn word_at(o: u32) -> u32 {
  let i = o >> 2u;
  let sh = (o & 3u) * 8u;
  if (sh == 0u) { return w[i]; }
  return (w[i] >> sh) | (w[i + 1u] << (32u - sh));
}
fn byte_at(o: u32) -> u32 { return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn u16_at(o: u32) -> u32 { return word_at(o) & 0xffffu; }
fn f16_at(o: u32) -> f32 { return unpack2x16float(u16_at(o)).x; }
fn i8x4(v: u32) -> vec4f {
  return vec4f(f32(i32(v << 24u) >> 24u), f32(i32(v << 16u) >> 24u), f32(i32(v << 8u) >> 24u), f32(i32(v) >> 24u));
}
fn u8x4(v: u32) -> vec4u { return vec4u(v & 0xffu, (v >> 8u) & 0xffu, (v >> 16u) & 0xffu, v >> 24u); }
`;

/** WGSL_WORDS and `x4`, four f32 activations from `x: array<f32>`. */
export const WGSL_BYTES = WGSL_WORDS + /* wgsl */ `
fn x4(o: u32) -> vec4f { return vec4f(x[o], x[o + 1u], x[o + 2u], x[o + 3u]); }
`;

const F32 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 { return bitcast<f32>(word_at(b)) * x[xo]; }
`;

const F16 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 { return f16_at(b) * x[xo]; }
`;

const BF16 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 { return bitcast<f32>(u16_at(b) << 16u) * x[xo]; }
`;

const Q8_0 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < 8u; i++) { s += dot(i8x4(word_at(b + 2u + 4u * i)), x4(xo + 4u * i)); }
  return f16_at(b) * s;
}
`;

const Q4_0 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < 4u; i++) {
    let q = u8x4(word_at(b + 2u + 4u * i));
    s += dot(vec4f(q & vec4u(15u)) - 8.0, x4(xo + 4u * i)) + dot(vec4f(q >> vec4u(4u)) - 8.0, x4(xo + 16u + 4u * i));
  }
  return f16_at(b) * s;
}
`;

const Q4_1 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 {
  var s = 0.0;
  var sx = 0.0;
  for (var i = 0u; i < 4u; i++) {
    let q = u8x4(word_at(b + 4u + 4u * i));
    let xa = x4(xo + 4u * i);
    let xb = x4(xo + 16u + 4u * i);
    s += dot(vec4f(q & vec4u(15u)), xa) + dot(vec4f(q >> vec4u(4u)), xb);
    sx += dot(xa + xb, vec4f(1.0));
  }
  return f16_at(b) * s + f16_at(b + 2u) * sx;
}
`;

/** The fifth bits of elements j..j+3 of a Q5 block (bit j of its qh word), as 16s. */
const Q5_HIGH = /* wgsl */ `
fn q5_high(qh: u32, j: u32) -> vec4u { return ((vec4u(qh) >> (vec4u(j) + vec4u(0u, 1u, 2u, 3u))) & vec4u(1u)) << vec4u(4u); }
`;

/** Q5_0 (d, qh, qs) and Q5_1 (d, m, qh, qs): the quants' low nibbles, their fifth bits from qh. */
function q5Dot(qhAt: number, withMin: boolean): string {
  return /* wgsl */ `
${Q5_HIGH}
fn block_dot(b: u32, xo: u32) -> f32 {
  let qh = word_at(b + ${qhAt}u);
  var s = 0.0;
  var sx = 0.0;
  for (var i = 0u; i < 4u; i++) {
    let q = u8x4(word_at(b + ${qhAt + 4}u + 4u * i));
    let xa = x4(xo + 4u * i);
    let xb = x4(xo + 16u + 4u * i);
    s += dot(vec4f((q & vec4u(15u)) | q5_high(qh, 4u * i)), xa) + dot(vec4f((q >> vec4u(4u)) | q5_high(qh, 16u + 4u * i)), xb);
    sx += dot(xa + xb, vec4f(1.0));
  }
  return ${withMin ? 'f16_at(b) * s + f16_at(b + 2u) * sx' : 'f16_at(b) * (s - 16.0 * sx)'};
}
`;
}

const Q5_0 = q5Dot(2, false);
const Q5_1 = q5Dot(4, true);

/** K-quant 6-bit scale and min j of the 12 packed bytes at byte offset o (ggml's get_scale_min_k4). */
const K_SCALES = /* wgsl */ `
fn scale_min(o: u32, j: u32) -> vec2f {
  if (j < 4u) { return vec2f(f32(byte_at(o + j) & 63u), f32(byte_at(o + j + 4u) & 63u)); }
  let sc = (byte_at(o + j + 4u) & 15u) | ((byte_at(o + j - 4u) >> 6u) << 4u);
  let m = (byte_at(o + j + 4u) >> 4u) | ((byte_at(o + j) >> 6u) << 4u);
  return vec2f(f32(sc), f32(m));
}
`;

const Q4_K = /* wgsl */ `
${K_SCALES}
fn block_dot(b: u32, xo: u32) -> f32 {
  let d = f16_at(b);
  let dmin = f16_at(b + 2u);
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let lo = scale_min(b + 4u, 2u * j);
    let hi = scale_min(b + 4u, 2u * j + 1u);
    var s1 = 0.0; var s2 = 0.0; var x1 = 0.0; var x2 = 0.0;
    for (var l = 0u; l < 32u; l += 4u) {
      let q = u8x4(word_at(b + 16u + 32u * j + l));
      let xa = x4(xo + 64u * j + l);
      let xb = x4(xo + 64u * j + 32u + l);
      s1 += dot(vec4f(q & vec4u(15u)), xa);
      s2 += dot(vec4f(q >> vec4u(4u)), xb);
      x1 += xa.x + xa.y + xa.z + xa.w;
      x2 += xb.x + xb.y + xb.z + xb.w;
    }
    acc += d * lo.x * s1 - dmin * lo.y * x1 + d * hi.x * s2 - dmin * hi.y * x2;
  }
  return acc;
}
`;

const Q5_K = /* wgsl */ `
${K_SCALES}
fn block_dot(b: u32, xo: u32) -> f32 {
  let d = f16_at(b);
  let dmin = f16_at(b + 2u);
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let lo = scale_min(b + 4u, 2u * j);
    let hi = scale_min(b + 4u, 2u * j + 1u);
    var s1 = 0.0; var s2 = 0.0; var x1 = 0.0; var x2 = 0.0;
    for (var l = 0u; l < 32u; l += 4u) {
      let q = u8x4(word_at(b + 48u + 32u * j + l));
      let h = u8x4(word_at(b + 16u + l));
      let h1 = select(vec4u(0u), vec4u(16u), (h & vec4u(1u << (2u * j))) != vec4u(0u));
      let h2 = select(vec4u(0u), vec4u(16u), (h & vec4u(2u << (2u * j))) != vec4u(0u));
      let xa = x4(xo + 64u * j + l);
      let xb = x4(xo + 64u * j + 32u + l);
      s1 += dot(vec4f((q & vec4u(15u)) + h1), xa);
      s2 += dot(vec4f((q >> vec4u(4u)) + h2), xb);
      x1 += xa.x + xa.y + xa.z + xa.w;
      x2 += xb.x + xb.y + xb.z + xb.w;
    }
    acc += d * lo.x * s1 - dmin * lo.y * x1 + d * hi.x * s2 - dmin * hi.y * x2;
  }
  return acc;
}
`;

const Q6_K = /* wgsl */ `
fn q6_scale(o: u32) -> f32 { return f32(i32(byte_at(o) << 24u) >> 24u); }
fn block_dot(b: u32, xo: u32) -> f32 {
  var acc = 0.0;
  for (var n = 0u; n < 2u; n++) {
    let ql = b + 64u * n;
    let qh = b + 128u + 32u * n;
    let sc = b + 192u + 8u * n;
    let xn = xo + 128u * n;
    for (var l = 0u; l < 32u; l += 4u) {
      let is = l / 16u;
      let a = u8x4(word_at(ql + l));
      let c = u8x4(word_at(ql + 32u + l));
      let h = u8x4(word_at(qh + l));
      let q1 = vec4f((a & vec4u(15u)) | ((h & vec4u(3u)) << vec4u(4u))) - 32.0;
      let q2 = vec4f((c & vec4u(15u)) | (((h >> vec4u(2u)) & vec4u(3u)) << vec4u(4u))) - 32.0;
      let q3 = vec4f((a >> vec4u(4u)) | (((h >> vec4u(4u)) & vec4u(3u)) << vec4u(4u))) - 32.0;
      let q4 = vec4f((c >> vec4u(4u)) | (((h >> vec4u(6u)) & vec4u(3u)) << vec4u(4u))) - 32.0;
      acc += q6_scale(sc + is) * dot(q1, x4(xn + l)) + q6_scale(sc + is + 2u) * dot(q2, x4(xn + 32u + l))
        + q6_scale(sc + is + 4u) * dot(q3, x4(xn + 64u + l)) + q6_scale(sc + is + 6u) * dot(q4, x4(xn + 96u + l));
    }
  }
  return f16_at(b + 208u) * acc;
}
`;

const Q8_0_W4 = /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f { return f16_at(b) * i8x4(word_at(b + 2u + i)); }
`;

const Q4_0_W4 = /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f {
  let q = u8x4(word_at(b + 2u + (i & 15u)));
  let nib = select(q & vec4u(15u), q >> vec4u(4u), i >= 16u);
  return f16_at(b) * (vec4f(nib) - 8.0);
}
`;

const Q4_1_W4 = /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f {
  let q = u8x4(word_at(b + 4u + (i & 15u)));
  return f16_at(b) * vec4f(select(q & vec4u(15u), q >> vec4u(4u), i >= 16u)) + f16_at(b + 2u);
}
`;

function q5W4(qhAt: number, withMin: boolean): string {
  return /* wgsl */ `
${Q5_HIGH}
fn w4(b: u32, i: u32) -> vec4f {
  let q = u8x4(word_at(b + ${qhAt + 4}u + (i & 15u)));
  let v = vec4f(select(q & vec4u(15u), q >> vec4u(4u), i >= 16u) | q5_high(word_at(b + ${qhAt}u), i));
  return ${withMin ? 'f16_at(b) * v + f16_at(b + 2u)' : 'f16_at(b) * (v - 16.0)'};
}
`;
}

const Q4_K_W4 = /* wgsl */ `
${K_SCALES}
fn w4(b: u32, i: u32) -> vec4f {
  let j = i / 32u;
  let q = u8x4(word_at(b + 16u + 32u * (j / 2u) + (i & 31u)));
  let nib = select(q & vec4u(15u), q >> vec4u(4u), (j & 1u) == 1u);
  let sm = scale_min(b + 4u, j);
  return f16_at(b) * sm.x * vec4f(nib) - f16_at(b + 2u) * sm.y;
}
`;

const Q5_K_W4 = /* wgsl */ `
${K_SCALES}
fn w4(b: u32, i: u32) -> vec4f {
  let j = i / 32u;
  let l = i & 31u;
  let q = u8x4(word_at(b + 48u + 32u * (j / 2u) + l));
  let h = u8x4(word_at(b + 16u + l));
  let hi = (j & 1u) == 1u;
  let nib = select(q & vec4u(15u), q >> vec4u(4u), hi);
  let bit = select(1u, 2u, hi) << (2u * (j / 2u));
  let v = nib + select(vec4u(0u), vec4u(16u), (h & vec4u(bit)) != vec4u(0u));
  let sm = scale_min(b + 4u, j);
  return f16_at(b) * sm.x * vec4f(v) - f16_at(b + 2u) * sm.y;
}
`;

const Q6_K_W4 = /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f {
  let n = i / 128u;
  let r = i & 127u;
  let quarter = r / 32u;
  let l = r & 31u;
  let ql = u8x4(word_at(b + 64u * n + l + select(0u, 32u, (quarter & 1u) == 1u)));
  let qh = u8x4(word_at(b + 128u + 32u * n + l));
  let low = select(ql & vec4u(15u), ql >> vec4u(4u), quarter >= 2u);
  let q = low | (((qh >> vec4u(2u * quarter)) & vec4u(3u)) << vec4u(4u));
  let sc = f32(i32(byte_at(b + 192u + 8u * n + l / 16u + 2u * quarter) << 24u) >> 24u);
  return f16_at(b + 208u) * sc * (vec4f(q) - 32.0);
}
`;

/**
 * Q2_K (84 bytes: scales[16], qs[64], d, dmin) and Q3_K (110: hmask[32], qs[64], scales[12], d):
 * element e's low 2 bits are bits 2 (e % 128 / 32) of qs byte 32 (e / 128) + e % 32; Q3_K's third
 * bit is bit e / 32 of hmask[e % 32]. Their block products are sums of w4 (the per-block path; these
 * types have no item decoder yet).
 */
const Q2_K_W4 = /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f {
  let r = i & 127u;
  let q = (u8x4(word_at(b + 16u + 32u * (i / 128u) + (r & 31u))) >> vec4u(2u * (r / 32u))) & vec4u(3u);
  let sc = byte_at(b + i / 16u);
  return f16_at(b + 80u) * f32(sc & 15u) * vec4f(q) - f16_at(b + 82u) * f32(sc >> 4u);
}
`;

const Q3_K_W4 = /* wgsl */ `
fn q3_scale(b: u32, g: u32) -> f32 {
  var low = byte_at(b + 96u + (g & 7u));
  if (g >= 8u) { low = low >> 4u; }
  let high = (byte_at(b + 104u + (g & 3u)) >> (2u * (g / 4u))) & 3u;
  return f32(i32((low & 15u) | (high << 4u)) - 32);
}
fn w4(b: u32, i: u32) -> vec4f {
  let r = i & 127u;
  let l = r & 31u;
  let low = (u8x4(word_at(b + 32u + 32u * (i / 128u) + l)) >> vec4u(2u * (r / 32u))) & vec4u(3u);
  let high = (u8x4(word_at(b + l)) >> vec4u(i / 32u)) & vec4u(1u);
  return f16_at(b + 108u) * q3_scale(b, i / 16u) * (vec4f(low + 4u * high) - 4.0);
}
`;

/** The values of IQ4_XS's and IQ4_NL's 4-bit codes (ggml's kvalues_iq4nl). */
const IQ4_VALUES = /* wgsl */ `
var<private> IQ4V: array<f32, 16> = array<f32, 16>(${IQ4_CODE_VALUES.map((v) => v.toFixed(1)).join(', ')});
fn iq4x4(c: vec4u) -> vec4f { return vec4f(IQ4V[c.x], IQ4V[c.y], IQ4V[c.z], IQ4V[c.w]); }
`;

/** IQ4_XS (136 bytes: d, scales_h, scales_l[4], qs[128]): per 32 weights a 6-bit scale (offset 32), 4-bit codes into a table of values. */
const IQ4_XS_W4 = /* wgsl */ `
${IQ4_VALUES}
fn iq4_scale(b: u32, ib: u32) -> f32 {
  let ls = ((byte_at(b + 4u + ib / 2u) >> (4u * (ib & 1u))) & 15u) | (((u16_at(b + 2u) >> (2u * ib)) & 3u) << 4u);
  return f32(i32(ls) - 32);
}
fn w4(b: u32, i: u32) -> vec4f {
  let ib = i / 32u;
  let l = i & 31u;
  let q = u8x4(word_at(b + 8u + 16u * ib + (l & 15u)));
  let c = select(q & vec4u(15u), q >> vec4u(4u), l >= 16u);
  return f16_at(b) * iq4_scale(b, ib) * iq4x4(c);
}
`;

/**
 * block_dot and w4 of a 32-element block of nibble codes at byte `qs` of the block (low nibbles
 * x[0..16), high ones x[16..32)), `lookup` turning a vec4u of codes into their values and `scale`
 * the block's scale (WGSL expressions of b).
 */
function tableNibbles(qs: number, lookup: string, scale: string): { dot: string; w4: string } {
  return {
    dot: /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 {
  var s = 0.0;
  for (var i = 0u; i < 4u; i++) {
    let q = u8x4(word_at(b + ${qs}u + 4u * i));
    s += dot(${lookup}(q & vec4u(15u)), x4(xo + 4u * i)) + dot(${lookup}(q >> vec4u(4u)), x4(xo + 16u + 4u * i));
  }
  return ${scale} * s;
}
`,
    w4: /* wgsl */ `
fn w4(b: u32, i: u32) -> vec4f {
  let q = u8x4(word_at(b + ${qs}u + (i & 15u)));
  return ${scale} * ${lookup}(select(q & vec4u(15u), q >> vec4u(4u), i >= 16u));
}
`,
  };
}

/** IQ4_NL (18 bytes: d, qs[16]): IQ4_XS's code values per 32 weights with one f16 scale; nibbles as Q4_0's. */
const IQ4_NL_PARTS = tableNibbles(2, 'iq4x4', 'f16_at(b)');
const IQ4_NL = IQ4_VALUES + IQ4_NL_PARTS.dot;
const IQ4_NL_W4 = IQ4_VALUES + IQ4_NL_PARTS.w4;

/** block_dot as the sum of a block's w4 over its 256 weights. */
const BLOCK_DOT_BY_W4 = /* wgsl */ `
fn block_dot(b: u32, xo: u32) -> f32 {
  var acc = 0.0;
  for (var i = 0u; i < 256u; i += 4u) { acc += dot(w4(b, i), x4(xo + i)); }
  return acc;
}
`;

/** MXFP4's E2M1 codes as ggml's doubled integers, and its E8M0 scale halved (ggml_e8m0_to_fp32_half). */
const MXFP4_COMMON = /* wgsl */ `
var<private> MXV: array<f32, 16> = array<f32, 16>(0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0, -12.0);
fn mx_half(b: u32) -> f32 { let e = byte_at(b); return bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u)); }
fn mx4(q: vec4u) -> vec4f { return vec4f(MXV[q.x], MXV[q.y], MXV[q.z], MXV[q.w]); }
`;

/** 17-byte blocks: the scale byte, then 16 bytes whose low nibbles are x[0..16) and high nibbles x[16..32). */
const MXFP4_PARTS = tableNibbles(1, 'mx4', 'mx_half(b)');
const MXFP4 = MXFP4_COMMON + MXFP4_PARTS.dot;
const MXFP4_W4 = MXFP4_COMMON + MXFP4_PARTS.w4;

const FORMATS = new Map<GgmlType, GpuWeightFormat>([
  [GgmlType.F32, { blockElems: 1, blockBytes: 4, wgsl: F32 }],
  [GgmlType.F16, { blockElems: 1, blockBytes: 2, wgsl: F16 }],
  [GgmlType.BF16, { blockElems: 1, blockBytes: 2, wgsl: BF16 }],
  [GgmlType.Q8_0, { blockElems: 32, blockBytes: 34, wgsl: Q8_0, w4: Q8_0_W4 }],
  [GgmlType.Q4_0, { blockElems: 32, blockBytes: 18, wgsl: Q4_0, w4: Q4_0_W4 }],
  [GgmlType.Q4_1, { blockElems: 32, blockBytes: 20, wgsl: Q4_1, w4: Q4_1_W4 }],
  [GgmlType.Q5_0, { blockElems: 32, blockBytes: 22, wgsl: Q5_0, w4: q5W4(2, false) }],
  [GgmlType.Q5_1, { blockElems: 32, blockBytes: 24, wgsl: Q5_1, w4: q5W4(4, true) }],
  [GgmlType.Q2_K, { blockElems: 256, blockBytes: 84, wgsl: Q2_K_W4 + BLOCK_DOT_BY_W4, w4: Q2_K_W4 }],
  [GgmlType.Q3_K, { blockElems: 256, blockBytes: 110, wgsl: Q3_K_W4 + BLOCK_DOT_BY_W4, w4: Q3_K_W4 }],
  [GgmlType.Q4_K, { blockElems: 256, blockBytes: 144, wgsl: Q4_K, w4: Q4_K_W4 }],
  [GgmlType.Q5_K, { blockElems: 256, blockBytes: 176, wgsl: Q5_K, w4: Q5_K_W4 }],
  [GgmlType.Q6_K, { blockElems: 256, blockBytes: 210, wgsl: Q6_K, w4: Q6_K_W4 }],
  [GgmlType.MXFP4, { blockElems: 32, blockBytes: 17, wgsl: MXFP4, w4: MXFP4_W4 }],
  [GgmlType.IQ4_XS, { blockElems: 256, blockBytes: 136, wgsl: IQ4_XS_W4 + BLOCK_DOT_BY_W4, w4: IQ4_XS_W4 }],
  [GgmlType.IQ4_NL, { blockElems: 32, blockBytes: 18, wgsl: IQ4_NL, w4: IQ4_NL_W4 }],
]);

/** The GPU format of a weight type, or undefined where the GPU kernels do not read it yet. */
export function gpuWeightFormat(type: GgmlType): GpuWeightFormat | undefined {
  return FORMATS.get(type);
}

/** The weight types the GPU kernels read. */
export const GPU_WEIGHT_TYPES: readonly GgmlType[] = [...FORMATS.keys()];
