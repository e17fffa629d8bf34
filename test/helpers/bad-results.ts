/**
 * Loaded into a `cairn node` process (NODE_OPTIONS=--import) to make it a hostile last stage: it
 * computes as usual, then rewrites every result frame it sends to the coordinator as
 * CAIRN_TEST_BAD_RESULT says: `negative-token` (token id -1), `extra-token` (one token id more than
 * the step has outputs), `unknown-step` (the result of a step that is not in flight).
 */
import { PeerConnection } from '../../src/cluster/index.js';
import { MeshFrame, type ResultHead } from '../../src/mesh/protocol.js';
import { packMessage, unpackMessage } from '../../src/util/message-framing.js';

const mode = process.env.CAIRN_TEST_BAD_RESULT;
const send = PeerConnection.prototype.send;

PeerConnection.prototype.send = function (this: PeerConnection, type, meta, payload) {
  if (type !== MeshFrame.result || !payload) return send.call(this, type, meta, payload);
  const { head, bodies } = unpackMessage<ResultHead>(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  let bad: ResultHead;
  if (mode === 'negative-token') bad = { ...head, tokens: head.tokens.map(() => -1) };
  else if (mode === 'extra-token') bad = { ...head, tokens: [...head.tokens, 0], logprobs: [...head.logprobs, null] };
  else if (mode === 'unknown-step') bad = { ...head, step: head.step + 1000 };
  else throw new Error(`CAIRN_TEST_BAD_RESULT=${mode} is not a known way to misbehave`);
  return send.call(this, type, meta, packMessage(bad, ...bodies));
};
