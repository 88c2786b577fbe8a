import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Members } from '../../lib/store/etcd-members.js';

const eps = ['http://a:2379', 'http://b:2379', 'http://c:2379'];
const file = () => join(mkdtempSync(join(tmpdir(), 'tether-members-')), 'm.json');

test('the member that answered last goes first; a recent failure goes last, and is tried again once it is old', (t) => {
  const m = new Members(eps);
  t.deepEqual(m.order(), eps, 'nothing known: the configured order');
  m.answered(eps[1]);
  t.deepEqual(m.order(), [eps[1], eps[0], eps[2]]);
  m.failed(eps[1], 'refused', 1000);
  t.deepEqual(m.order(2000), [eps[0], eps[2], eps[1]], 'failed 1 s ago: after the others');
  t.deepEqual(m.order(1000 + 60_000).slice(0, 2), [eps[0], eps[2]], 'failed long ago: no longer suspect, still not preferred');
  m.answered(eps[1]);
  t.deepEqual(m.order(), [eps[1], eps[0], eps[2]], 'answering again clears the failure');
});

test('what one exec learns, the next reads: saved only when something changed; a damaged file is ignored', (t) => {
  const f = file();
  const first = new Members(eps, f);
  first.failed(eps[0], 'no answer within 250 ms while http://b:2379 answered');
  first.answered(eps[1]);
  first.save();
  const rec = JSON.parse(readFileSync(f, 'utf8'));
  t.is(rec.preferred, eps[1]);
  t.regex(rec.failed[eps[0]].why, /no answer within/);
  const next = new Members(eps, f);
  t.is(next.order()[0], eps[1], 'the next exec starts with the live member');
  t.is(next.order()[2], eps[0], 'and tries the silent one last');
  writeFileSync(f, '{not json');
  t.deepEqual(new Members(eps, f).order(), eps);
});
