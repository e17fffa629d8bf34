/**
 * Detokenization rules: llama.cpp's space clean-up passes, how each token kind renders, and the
 * skipSpecial switch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { scratchDir } from '../../test/helpers/paths.js';
import { cleanSpaces } from './detokenize.js';
import { TokenType } from './token-attr.js';
import { spmEntries, tinyTokenizer } from './testing/tiny-vocab.js';

const dir = scratchDir('detok');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const clean = (s: string): string => new TextDecoder().decode(cleanSpaces(new TextEncoder().encode(s)));

test('clean-up: spaces before ? ! . , go', () => {
  assert.equal(clean('a , b . c ! d ?'), 'a, b. c! d?');
  assert.equal(clean(' .'), '.');
  assert.equal(clean('a  .'), 'a .', 'only the one space right before');
});

test("clean-up: a lone apostrophe between spaces sticks to both sides; 's 'm 're 've lose their space", () => {
  assert.equal(clean("a ' b"), "a'b");
  assert.equal(clean("it 's I 'm we 're you 've"), "it's I'm we're you've");
  assert.equal(clean("don 't we 'll he 'd"), "don 't we 'll he 'd", "'t 'll 'd keep their space");
  assert.equal(clean("x ' ' y"), "x'' y", 'the second apostrophe sees the removed space, not a space');
});

test('token kinds: byte tokens give bytes, ▁ gives spaces, control tokens render only when asked', () => {
  const tok = tinyTokenizer(
    dir,
    spmEntries([['▁hi', -1], ['<|x|>', 0, TokenType.CONTROL], ['<u>', 0, TokenType.USER_DEFINED], ['dead', 0, TokenType.UNUSED]], { bytes: true }),
  );
  const [hi, x, u, dead] = ['▁hi', '<|x|>', '<u>', 'dead'].map((t) => tok.tokenId(t)!);
  const e9 = tok.tokenId('<0xC3>')!;
  const a9 = tok.tokenId('<0xA9>')!;
  assert.equal(tok.decode([hi, hi]), 'hi hi');
  assert.equal(tok.decode([hi, e9, a9]), 'hié');
  assert.equal(tok.decode([hi, x, u]), 'hi<u>', 'user-defined tokens always render');
  assert.equal(tok.decode([hi, x, u], { skipSpecial: false }), 'hi<|x|><u>');
  assert.equal(tok.decode([hi, tok.unkId!], { skipSpecial: false }), 'hi<unk>');
  assert.equal(tok.decode([hi, dead]), 'hi', 'unused tokens render as nothing');
  assert.equal(tok.decode([e9]), '\ufffd', 'a lone lead byte is not text');
  assert.deepEqual([...tok.decodeBytes([e9])], [0xc3]);
});
