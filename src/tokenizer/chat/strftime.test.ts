import { test } from 'node:test';
import assert from 'node:assert/strict';
import { strftime } from './strftime.js';

test('strftime formats the directives chat templates use, in English, local time', () => {
  const d = new Date(2024, 6, 5, 14, 3, 9); // Friday 5 July 2024, 14:03:09 local
  assert.equal(strftime(d, '%d %b %Y'), '05 Jul 2024');
  assert.equal(strftime(d, '%A, %B %-d, %y'), 'Friday, July 5, 24');
  assert.equal(strftime(d, '%H:%M:%S %I%p %a %m/%d'), '14:03:09 02PM Fri 07/05');
  assert.equal(strftime(d, '%j %e 100%% %Q'), '187  5 100% %Q');
  assert.equal(strftime(new Date(2024, 0, 1, 0), '%I %p %j'), '12 AM 001');
});
