/**
 * How netplumb-container reads its target, without privileges: the forms (ID, PID, path, with or without a
 * prefix), the ambiguity rule (digits only are a PID; `id:` for an all-digit container ID), path validation,
 * and the canonical form records store.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CniError } from '../../lib/cni/errors.js';
import { formatTarget, nsPathProblem, parseRecordedTarget, parseTarget } from '../../lib/modes/target.js';

const parse = (v: unknown) => parseTarget(v, '"container"');
const refusal = (v: unknown): [number, string] => {
  try {
    parse(v);
  } catch (e) {
    assert.instance(e, CniError);
    return [(e as CniError).cniCode, (e as Error).message];
  }
  throw new Error(`${JSON.stringify(v)} was accepted`);
};

test('the forms and their canonical text', () => {
  const cases: Array<[string, unknown, string]> = [
    ['web', { kind: 'container', id: 'web' }, 'web'],
    ['id:web', { kind: 'container', id: 'web' }, 'web'],
    ['id:1234', { kind: 'container', id: '1234' }, '1234'],
    ['1234', { kind: 'pid', pid: 1234 }, 'pid:1234'],
    ['pid:1234', { kind: 'pid', pid: 1234 }, 'pid:1234'],
    ['/run/netns/web', { kind: 'path', path: '/run/netns/web' }, 'ns:/run/netns/web'],
    ['ns:/run/netns/web', { kind: 'path', path: '/run/netns/web' }, 'ns:/run/netns/web'],
    ['/proc/42/ns/net', { kind: 'path', path: '/proc/42/ns/net' }, 'ns:/proc/42/ns/net'],
  ];
  for (const [raw, want, text] of cases) {
    const t = parse(raw);
    assert.equal(t, want, raw);
    assert.is(formatTarget(t), text, raw);
  }
});

test('records: a bare all-digit value is the container ID it was written as; pid:/ns: only canonical', () => {
  assert.equal(parseRecordedTarget('1234'), { kind: 'container', id: '1234' });
  assert.equal(parseRecordedTarget('pid:1234'), { kind: 'pid', pid: 1234 });
  assert.equal(parseRecordedTarget('ns:/run/netns/x'), { kind: 'path', path: '/run/netns/x' });
  for (const bad of ['pid:01', 'ns:/run/../x', '/run/netns/x', 'id:web', '', 7]) assert.is(parseRecordedTarget(bad), undefined, String(bad));
});

test('refusals are error 7 and say why', () => {
  const cases: Array<[unknown, RegExp]> = [
    [42, /42 is not a string/],
    ['pid:0', /is not a PID/],
    ['pid:012', /is not a PID/],
    ['4194305', /is not a PID/],
    ['pid:-1', /is not a PID/],
    ['/run/netns/../etc/x', /has a "\.\." segment/],
    ['/run/netns/./x', /has a "\." segment/],
    ['/run//netns/x', /not normalised/],
    ['/run/netns/x/', /not normalised/],
    ['ns:relative', /is not absolute/],
    ['../../etc', /is not a container ID, and as a path it is not absolute/],
    ['web/../x', /is not a container ID/],
    ['-web', /is not a container ID/],
    ['id:../x', /is not a container ID/],
    ['docker:web', /unknown prefix "docker:"/],
    [`/${'a'.repeat(5000)}`, /longer than/],
    ['/run/netns/x\0', /contains NUL/],
  ];
  for (const [raw, re] of cases) {
    const [code, msg] = refusal(raw);
    assert.is(code, 7, String(raw));
    assert.match(msg, re, String(raw));
    assert.match(msg, /^"container" must be/);
  }
  assert.is(nsPathProblem('/run/netns/ok'), undefined);
});

test.run();
