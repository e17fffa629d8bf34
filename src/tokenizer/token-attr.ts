/**
 * Token types as stored in GGUF (`tokenizer.ggml.token_type`) and the attribute bits llama.cpp
 * derives from them. Attributes are a bit set because loading may add CONTROL to a token whose
 * text marks it as an end-of-turn or fill-in-the-middle token.
 */

/** GGUF token types (llama_token_type). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Token attribute bits (llama_token_attr). */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  NORMALIZED: 1 << 6,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
  SINGLE_WORD: 1 << 9,
} as const;

/** The attribute a GGUF token type starts with; unknown type numbers count as undefined. */
export function attrFromTokenType(type: number): number {
  switch (type) {
    case TokenType.NORMAL:
      return TokenAttr.NORMAL;
    case TokenType.UNKNOWN:
      return TokenAttr.UNKNOWN;
    case TokenType.CONTROL:
      return TokenAttr.CONTROL;
    case TokenType.USER_DEFINED:
      return TokenAttr.USER_DEFINED;
    case TokenType.UNUSED:
      return TokenAttr.UNUSED;
    case TokenType.BYTE:
      return TokenAttr.BYTE;
    default:
      return TokenAttr.UNDEFINED;
  }
}
