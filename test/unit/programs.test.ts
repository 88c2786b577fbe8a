import test from 'ava';
import { programs } from '../../bin/programs.js';
import { BINARY, LINKS } from '../../lib/programs.js';

test('every program name dist/bin and `cnictl install` link to the binary is one the binary dispatches', (t) => {
  for (const name of LINKS) t.is(typeof programs[name], 'function', name);
  t.false((LINKS as readonly string[]).includes(BINARY), 'the binary is not one of its own links');
});
