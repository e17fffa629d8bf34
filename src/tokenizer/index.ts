/**
 * Tokenizers built from GGUF metadata: SentencePiece-style (llama), byte-level BPE (gpt2) and
 * WordPiece (bert), giving the same ids as llama.cpp.
 */
export { Tokenizer, tokenizerFromGguf, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { StreamingDecoder, type StreamingDecoderOptions } from './streaming-decoder.js';
export { Vocab, type VocabType, type SpecialIds, type VocabFlags } from './vocab.js';
export { loadVocab } from './vocab-load.js';
export { TokenType, TokenAttr } from './token-attr.js';
export { knownPreTokenizers } from './pre-tokenizers.js';
