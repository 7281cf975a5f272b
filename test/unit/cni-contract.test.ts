/**
 * The contract, in process: the skeleton's validation and error codes for every verb, env and CNI_ARGS
 * rules, error mapping, the stdin bound, rollback. A recording fake plugin shows whether the plugin was
 * reached at all (bad input must be refused before any plugin code runs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cniArgsValues, parseCniArgs, parseEnv } from '../../lib/cni/env.js';
import { CniError, toCniError, unsupportedField } from '../../lib/cni/errors.js';
import { UndoStack, withRollback } from '../../lib/modes/steps.js';
import { MAX_STDIN_BYTES, readStdin, type CniRequest } from '../../lib/cni/request.js';
import { handle, type CniPlugin } from '../../lib/cni/skeleton.js';
import { IpamError } from '../../lib/ipam/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'np-cni-unit-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

interface Fake extends CniPlugin {
  calls: Array<{ verb: string; req: CniRequest }>;
  next?: () => unknown;
}

function fake(opts: Partial<CniPlugin> = {}): Fake {
  const calls: Fake['calls'] = [];
  const f: Fake = {
    name: 'fake',
    calls,
    async add(req) {
      calls.push({ verb: 'ADD', req });
      f.next?.();
      return { cniVersion: '1.1.0', ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }] };
    },
    async del(req) {
      calls.push({ verb: 'DEL', req });
      f.next?.();
    },
    async check(req) {
      calls.push({ verb: 'CHECK', req });
      f.next?.();
    },
    async gc(req) {
      calls.push({ verb: 'GC', req });
    },
    async status(req) {
      calls.push({ verb: 'STATUS', req });
    },
    ...opts,
  };
  return f;
}

const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
const CONF = { cniVersion: '1.0.0', name: 'net', type: 'fake' };

async function call(p: CniPlugin, env: Record<string, string | undefined>, stdin: unknown = CONF) {
  const o = await handle(p, env, {
    readStdin: async () => (Buffer.isBuffer(stdin) ? stdin : Buffer.from(typeof stdin === 'string' ? stdin : JSON.stringify(stdin))),
  });
  const json = o.stdout === '' ? undefined : JSON.parse(o.stdout);
  return { ...o, json };
}

async function expectCode(env: Record<string, string | undefined>, stdin: unknown, code: number, re: RegExp, details?: RegExp) {
  const p = fake();
  const o = await call(p, env, stdin);
  assert.is(o.exitCode, 1, `${JSON.stringify(env)} ${JSON.stringify(stdin)}`);
  assert.is(o.json.code, code, o.stdout);
  assert.match(o.json.msg, re);
  if (details) assert.match(o.json.details, details);
  assert.equal(Object.keys(o.json).slice(0, 3), ['cniVersion', 'code', 'msg']);
  assert.is(p.calls.length, 0, 'the plugin was not reached');
  assert.match(o.stderr, /^fake: /m);
}

test("ADD prints the Result in the config's version; DEL/CHECK/GC/STATUS print nothing", async () => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    const o = await call(fake(), ENV, { ...CONF, cniVersion: v });
    assert.is(o.exitCode, 0);
    assert.is(o.json.cniVersion, v);
    assert.is('version' in o.json.ips[0], v.startsWith('0.'));
  }
  for (const [cmd, v] of [
    ['DEL', '0.3.1'],
    ['CHECK', '0.4.0'],
    ['GC', '1.1.0'],
    ['STATUS', '1.1.0'],
  ] as const) {
    const p = fake();
    const conf = cmd === 'GC' ? { ...CONF, cniVersion: v, 'cni.dev/valid-attachments': [] } : { ...CONF, cniVersion: v };
    const o = await call(p, { ...ENV, CNI_COMMAND: cmd }, conf);
    assert.equal([o.exitCode, o.stdout], [0, ''], `${cmd}: ${o.stdout}`);
    assert.equal(
      p.calls.map((c) => c.verb),
      [cmd],
    );
  }
});

test('VERSION answers {cniVersion, supportedVersions} without reading stdin', async () => {
  const o = await handle(fake(), { CNI_COMMAND: 'VERSION' }, { readStdin: () => Promise.reject(new Error('stdin was read')) });
  assert.is(o.exitCode, 0);
  assert.equal(JSON.parse(o.stdout), { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
});

test('error 4: missing or unknown CNI_COMMAND, missing variables per verb (named), bad container ID and ifname', async () => {
  await expectCode({}, CONF, 4, /CNI_COMMAND is missing/, /CNI_COMMAND/);
  await expectCode({ CNI_COMMAND: 'FROB' }, CONF, 4, /unknown CNI_COMMAND "FROB"/);
  await expectCode({ CNI_COMMAND: 'ADD' }, CONF, 4, /\[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME\] missing for ADD/, /CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME/);
  await expectCode({ ...ENV, CNI_COMMAND: 'CHECK', CNI_NETNS: '' }, { ...CONF, cniVersion: '0.4.0' }, 4, /\[CNI_NETNS\] missing for CHECK/);
  await expectCode({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1' }, CONF, 4, /\[CNI_IFNAME\] missing for DEL/);
  for (const id of ['-c1', '_x', '.x', 'a/b', 'a b', 'ä', 'a:b', '../../etc']) {
    await expectCode({ ...ENV, CNI_CONTAINERID: id }, CONF, 4, /CNI_CONTAINERID .* has characters outside/, /CNI_CONTAINERID/);
  }
  for (const [ifname, re] of [
    ['abcdefghijklmnop', /longer than 15 bytes/],
    ['.', /may not be "\."/],
    ['..', /may not be "\.\."/],
    ['a/b', /may not contain "\/" or ":"/],
    ['eth0:1', /may not contain "\/" or ":"/],
    ['e th', /whitespace/],
    ['e\tth', /whitespace/],
    ['e\u00a0th', /whitespace/],
    ['ääääääää', /longer than 15 bytes \(16\)/],
  ] as const) {
    await expectCode({ ...ENV, CNI_IFNAME: ifname }, CONF, 4, re, /CNI_IFNAME/);
  }
  await expectCode({ ...ENV, CNI_CONTAINERID: 'a b', CNI_IFNAME: '.' }, CONF, 4, /CNI_CONTAINERID.*; CNI_IFNAME/, /CNI_CONTAINERID,CNI_IFNAME/);
  await expectCode({ ...ENV, CNI_ARGS: 'A=1;B' }, CONF, 4, /CNI_ARGS/, /CNI_ARGS/);
  const ok = await call(fake(), { ...ENV, CNI_IFNAME: 'abcdefghijklmno' });
  assert.is(ok.exitCode, 0, 'exactly 15 bytes is fine');
});

test('DEL needs no CNI_NETNS; GC, STATUS and VERSION need only CNI_COMMAND', async () => {
  const p = fake();
  assert.is((await call(p, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' })).exitCode, 0);
  assert.is(p.calls[0]!.req.netns, '');
  assert.is((await call(p, { CNI_COMMAND: 'STATUS' }, { ...CONF, cniVersion: '1.1.0' })).exitCode, 0);
  assert.is(
    (await call(p, { CNI_COMMAND: 'GC' }, { ...CONF, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] })).exitCode,
    0,
  );
  assert.equal(p.calls.at(-1)!.req.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
});

test("GC: the valid attachments are required; libcni's misspelt key is accepted; entries are checked", async () => {
  const gc = { CNI_COMMAND: 'GC' };
  await expectCode(gc, { ...CONF, cniVersion: '1.1.0' }, 7, /GC needs the list of valid attachments/);
  await expectCode(gc, { ...CONF, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 1 }] }, 7, /valid-attachments\[0\]/);
  const p = fake();
  const o = await call(p, gc, { ...CONF, cniVersion: '1.1.0', 'cni.dev/attachments': [{ containerID: 'x', ifname: 'net1' }] });
  assert.is(o.exitCode, 0);
  assert.equal(p.calls[0]!.req.validAttachments, [{ containerId: 'x', ifname: 'net1' }]);
});

test('errors 6, 1 and 7: undecodable JSON, versions, network name, prevResult', async () => {
  await expectCode(ENV, 'garbage', 6, /error decoding network config/);
  await expectCode(ENV, '[1,2]', 6, /not a JSON object/);
  await expectCode(ENV, '', 6, /error decoding/);
  await expectCode(ENV, { ...CONF, cniVersion: 1 }, 6, /cniVersion must be a string/);
  await expectCode(ENV, { name: 'net' }, 1, /incompatible CNI versions/, /config is "", plugin supports \["0\.3\.0","0\.3\.1","0\.4\.0","1\.0\.0","1\.1\.0"\]/);
  await expectCode(ENV, { ...CONF, cniVersion: '0.2.0' }, 1, /incompatible/, /config is "0\.2\.0"/);
  await expectCode(ENV, { ...CONF, cniVersion: '9.9.9' }, 1, /incompatible/);
  await expectCode({ ...ENV, CNI_COMMAND: 'CHECK' }, { ...CONF, cniVersion: '0.3.1' }, 1, /0\.3\.1 does not allow CHECK/);
  await expectCode({ CNI_COMMAND: 'STATUS' }, { ...CONF, cniVersion: '1.0.0' }, 1, /1\.0\.0 does not allow STATUS/);
  await expectCode({ CNI_COMMAND: 'GC' }, { ...CONF, cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }, 1, /does not allow GC/);
  await expectCode(ENV, { cniVersion: '1.0.0' }, 7, /missing network name/);
  await expectCode(ENV, { cniVersion: '1.0.0', name: '../etc' }, 7, /invalid characters found in network name/, /\.\.\/etc/);
  await expectCode(ENV, { ...CONF, prevResult: { cniVersion: '1.0.0', ips: [{ address: 'x' }] } }, 7, /invalid prevResult: ips\[0\]\.address/);
  const p = fake();
  await call(p, ENV, { ...CONF, cniVersion: '0.4.0', prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.9/24' }] } });
  assert.equal(p.calls[0]!.req.prevResult, { cniVersion: '1.1.0', ips: [{ address: '10.1.0.9/24' }] });
});

test('errors from the plugin: CniError kept, IPAM codes mapped, errno → 5/11, anything else 999 (stack on stderr only)', async () => {
  const cases: Array<[unknown, number, RegExp]> = [
    [unsupportedField('vlan', 4095, 'no 8021q here'), 2, /unsupported field "vlan": 4095 \(no 8021q here\)/],
    [new IpamError('ERR_IPAM_EXHAUSTED', 'no free address in range set 0 of network "n"', 'allocate'), 100, /network "n"/],
    [new IpamError('ERR_IPAM_CONFIG', 'bad range', 'parse'), 7, /bad range/],
    [new IpamError('ERR_IPAM_BUSY', 'locked', 'flock'), 11, /locked/],
    [Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }), 5, /no space/],
    [Object.assign(new Error('resource busy'), { code: 'EBUSY' }), 11, /busy/],
    [new TypeError('x is not a function'), 999, /x is not a function/],
  ];
  for (const [err, code, re] of cases) {
    const p = fake();
    p.next = () => {
      throw err;
    };
    const o = await call(p, ENV, { ...CONF, cniVersion: '0.4.0' });
    assert.is(o.exitCode, 1);
    assert.is(o.json.code, code, o.stdout);
    assert.is(o.json.cniVersion, '0.4.0', "the error speaks the config's version");
    assert.match(o.json.msg, re);
    assert.not.match(o.stdout, /\n\s+at /, 'no stack trace on stdout');
    if (code === 999) assert.match(o.stderr, /at /, 'the stack goes to stderr');
  }
  const details = unsupportedField('hairpinMode', 'yes');
  assert.is(details.toJSON('1.1.0').details, 'hairpinMode="yes"');
  assert.is(toCniError(details), details);
});

test('CNI_NETNS checks for main plugins: missing → 3, not a namespace → 4, own namespace with `foreign` → 8', async () => {
  const file = join(tmp, 'not-a-ns');
  writeFileSync(file, '');
  const exists = fake({ netns: 'exists' });
  assert.is((await call(exists, { ...ENV, CNI_NETNS: '/run/netns/does-not-exist' })).json.code, 3);
  assert.is((await call(exists, { ...ENV, CNI_NETNS: file })).json.code, 4);
  assert.is((await call(exists, { ...ENV, CNI_NETNS: '/proc/self/ns/net' })).exitCode, 0);
  const foreign = fake({ netns: 'foreign' });
  const o = await call(foreign, { ...ENV, CNI_NETNS: '/proc/self/ns/net' });
  assert.is(o.json.code, 8);
  assert.match(o.json.msg, /plugin's own network namespace/);
  assert.is(foreign.calls.length, 0, 'refused before the plugin acted');
  const del = await call(foreign, { ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: '/run/netns/gone' });
  assert.is(del.exitCode, 0, 'DEL with a vanished namespace still reaches the plugin');
});

test('stdin is bounded: more than 1 MiB is refused with error 5', async () => {
  const big = join(tmp, 'big.json');
  writeFileSync(big, Buffer.alloc(MAX_STDIN_BYTES + 10, 0x20));
  const fd = openSync(big, 'r');
  try {
    await assertRejects(readStdin(MAX_STDIN_BYTES, fd), { cniCode: 5, message: /larger than 1048576 bytes/ });
  } finally {
    closeSync(fd);
  }
  const small = join(tmp, 'small.json');
  writeFileSync(small, JSON.stringify(CONF));
  const fd2 = openSync(small, 'r');
  assert.equal(JSON.parse((await readStdin(MAX_STDIN_BYTES, fd2)).toString()), CONF);
  closeSync(fd2);
});

test('CNI_ARGS: K=V pairs; unknown keys refused unless IgnoreUnknown', () => {
  assert.equal(parseCniArgs('IP=10.1.0.5;K8S_POD_NAME=web'), [
    ['IP', '10.1.0.5'],
    ['K8S_POD_NAME', 'web'],
  ]);
  assert.equal(parseCniArgs(''), []);
  for (const bad of ['A', 'A=1=2', '=1', 'A=1;;B=2'])
    assert.throws(
      () => parseCniArgs(bad),
      (e: unknown) => (e as CniError).cniCode === 4,
      bad,
    );
  assert.equal([...cniArgsValues('IgnoreUnknown=1;IP=10.1.0.5;K8S_POD_NAME=x', ['IP'])], [['IP', '10.1.0.5']]);
  assert.equal([...cniArgsValues('IgnoreUnknown=TRUE;FOO=1', ['IP'])], []);
  assert.throws(() => cniArgsValues('FOO=bar', ['IP']), /unknown args \["FOO=bar"\]/);
  assert.throws(() => cniArgsValues('IgnoreUnknown=yes', ['IP']), /IgnoreUnknown must be/);
  assert.throws(() => cniArgsValues('ip=10.1.0.5', ['IP']), /unknown args/, 'keys are case-sensitive, as in libcni');
  assert.equal(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/a::/b' }).path, ['/a', '/b']);
});

test('rollback: undos run in reverse, all of them, failures named in details; success forgets them', async () => {
  const log: string[] = [];
  const e = await assertRejects<CniError>(
    withRollback(async (undo) => {
      undo.push('one', () => log.push('undo one'));
      undo.push('two', () => {
        log.push('undo two');
        throw new Error('two is stuck');
      });
      undo.push('three', async () => log.push('undo three'));
      throw new CniError(100, 'exhausted');
    }),
    { cniCode: 100 },
  );
  assert.equal(log, ['undo three', 'undo two', 'undo one']);
  assert.match(e.details!, /rollback also failed: two: two is stuck/);
  const undo = new UndoStack();
  undo.push('x', () => log.push('never'));
  undo.clear();
  assert.equal(await undo.unwind(), []);
  assert.is(await withRollback(async (u) => (u.push('y', () => log.push('never')), 42)), 42);
  assert.not.ok(log.includes('never'));
});

test.run();
