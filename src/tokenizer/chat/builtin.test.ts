import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../../util/errors.js';
import {
  BUILTIN_TEMPLATE_NAMES,
  builtinChatTemplate,
  guessChatTemplateName,
  resolveChatTemplate,
} from './builtin.js';
import type { ChatMessage } from './types.js';

const chat: ChatMessage[] = [
  { role: 'system', content: 'SYS' },
  { role: 'user', content: 'U1' },
  { role: 'assistant', content: 'A1' },
  { role: 'user', content: 'U2' },
];
const tokens = { bosToken: '<s>', eosToken: '</s>' };

test('chatml fallback', () => {
  assert.equal(
    builtinChatTemplate('chatml').render(chat),
    '<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n' +
      '<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n',
  );
});

test('llama-2 fallback: <<SYS>> block in the first [INST], BOS per turn, EOS after replies', () => {
  assert.equal(
    builtinChatTemplate('llama-2').render(chat, tokens),
    '<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]',
  );
  // No tool role in this format: a tool result becomes a user turn that says what it is.
  assert.equal(
    builtinChatTemplate('llama-2').render([{ role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }, { role: 'tool', content: '{"t": 1}' }], tokens),
    '<s>[INST] U [/INST] A </s><s>[INST] Tool result: {"t": 1} [/INST]',
  );
  assert.throws(
    () => builtinChatTemplate('llama-2').render([{ role: 'narrator', content: 'x' }], tokens),
    (e) => isCairnError(e, 'TEMPLATE_ERROR') && /no 'narrator' role/.test(e.message),
  );
});

test('llama-3 fallback: headers, eot, tool turns as ipython', () => {
  const h = (r: string): string => `<|start_header_id|>${r}<|end_header_id|>\n\n`;
  assert.equal(
    builtinChatTemplate('llama-3').render([...chat, { role: 'tool', content: ' 42 ' }], { bosToken: '<|begin_of_text|>' }),
    '<|begin_of_text|>' + h('system') + 'SYS<|eot_id|>' + h('user') + 'U1<|eot_id|>' + h('assistant') + 'A1<|eot_id|>' +
      h('user') + 'U2<|eot_id|>' + h('ipython') + '42<|eot_id|>' + h('assistant'),
  );
});

test('mistral fallback: system prompt joins the last user turn', () => {
  assert.equal(builtinChatTemplate('mistral').render(chat, tokens), '<s>[INST] U1[/INST] A1</s>[INST] SYS\n\nU2[/INST]');
});

test("gemma fallback: 'model' turns, the system prompt opening the first turn, tool results as user turns", () => {
  const t = (role: string, text: string): string => `<start_of_turn>${role}\n${text}<end_of_turn>\n`;
  assert.equal(
    builtinChatTemplate('gemma').render([...chat, { role: 'assistant', content: 'A2' }, { role: 'tool', content: ' 42 ' }], { bosToken: '<bos>' }),
    '<bos>' + t('user', 'SYS\n\nU1') + t('model', 'A1') + t('user', 'U2') + t('model', 'A2') + t('user', 'Tool result: 42') + '<start_of_turn>model\n',
  );
  assert.equal(builtinChatTemplate('gemma').render(chat.slice(1, 2), { bosToken: '<bos>' }), '<bos>' + t('user', 'U1') + '<start_of_turn>model\n');
  assert.throws(
    () => builtinChatTemplate('gemma').render([{ role: 'narrator', content: 'x' }], { bosToken: '<bos>' }),
    (e) => isCairnError(e, 'TEMPLATE_ERROR') && /no 'narrator' role/.test(e.message),
  );
});

test('phi-3 fallback: a tag per role, <|end|> after each turn, tool results as user turns, EOS without a generation prompt', () => {
  const t = (role: string, text: string): string => `<|${role}|>\n${text}<|end|>\n`;
  assert.equal(
    builtinChatTemplate('phi-3').render([...chat, { role: 'tool', content: '42' }], tokens),
    t('system', 'SYS') + t('user', 'U1') + t('assistant', 'A1') + t('user', 'U2') + t('user', 'Tool result: 42') + '<|assistant|>\n',
  );
  assert.equal(builtinChatTemplate('phi-3').render(chat.slice(1, 3), { ...tokens, addGenerationPrompt: false }), t('user', 'U1') + t('assistant', 'A1') + '</s>');
});

test('every built-in renders without a generation prompt too', () => {
  for (const name of BUILTIN_TEMPLATE_NAMES) {
    const text = builtinChatTemplate(name).render(chat.slice(1, 3), { ...tokens, addGenerationPrompt: false });
    assert.ok(text.includes('U1') && text.includes('A1'), name);
  }
});

test('the vocabulary picks the fallback', () => {
  assert.equal(guessChatTemplateName(['<unk>', '<|im_start|>', '<|im_end|>']), 'chatml');
  assert.equal(guessChatTemplateName(['<|begin_of_text|>', '<|start_header_id|>', '<|eot_id|>']), 'llama-3');
  assert.equal(guessChatTemplateName(['<unk>', '<s>', '</s>', '[INST]', '[/INST]']), 'mistral');
  assert.equal(guessChatTemplateName(['<unk>', '<s>', '</s>', '▁the']), 'llama-2');
  assert.equal(guessChatTemplateName(['<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>']), 'gemma');
  assert.equal(guessChatTemplateName(['<unk>', '<s>', '</s>', '<|user|>', '<|assistant|>', '<|end|>']), 'phi-3');
  assert.equal(guessChatTemplateName(['a', 'b']), undefined);
});

test('resolveChatTemplate: name, then file template, then vocabulary guess, then chatml', () => {
  const fileTemplate = '{{ messages[0].content }}!';
  assert.equal(resolveChatTemplate({ name: 'llama-3', template: fileTemplate }).name, 'llama-3');
  const fromFile = resolveChatTemplate({ template: fileTemplate, tokens: ['<|im_start|>'] });
  assert.equal(fromFile.name, undefined);
  assert.equal(fromFile.render(chat), 'SYS!');
  assert.equal(resolveChatTemplate({ template: '  ', tokens: ['<s>', '</s>', '[INST]'] }).name, 'mistral');
  assert.equal(resolveChatTemplate({ tokens: ['x'] }).name, 'chatml');
  assert.equal(resolveChatTemplate().name, 'chatml');
});

test('unknown names and broken file templates are TEMPLATE_ERRORs', () => {
  assert.throws(
    () => resolveChatTemplate({ name: 'vicuna' }),
    (e) => isCairnError(e, 'TEMPLATE_ERROR') && /unknown chat template 'vicuna'.*chatml/.test(e.message),
  );
  assert.throws(() => resolveChatTemplate({ template: '{% if %}' }), (e) => isCairnError(e, 'TEMPLATE_ERROR'));
});
