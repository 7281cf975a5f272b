/**
 * Delegation mechanics with small stand-in plugins (node scripts in a temp CNI_PATH): lookup safety
 * (CVE-2021-20206, relative CNI_PATH), the environment and stdin a delegate receives, its Result and its
 * error read back, a crash and a hang. The real plugins (reference host-local, static, netplumb's own)
 * are exercised in test/e2e/ipam-delegation.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delegate, delegateEnv, findInPath, validatePluginType } from '../../lib/cni/delegate.js';
import { CniError } from '../../lib/cni/errors.js';
import { ipamType } from '../../lib/modes/ipam.js';
import { parseRequest } from '../../lib/cni/request.js';

const root = mkdtempSync(join(tmpdir(), 'np-delegate-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const bin1 = join(root, 'bin1');
const bin2 = join(root, 'bin2');
mkdirSync(bin1);
mkdirSync(bin2);

function plugin(dir: string, name: string, body: string, mode = 0o755): string {
  const f = join(dir, name);
  writeFileSync(f, `#!${process.execPath}\n${body}\n`);
  chmodSync(f, mode);
  return f;
}

// Records what it was given, then answers like an IPAM plugin.
plugin(
  bin2,
  'recorder',
  `const fs = require('fs');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_') || k === 'EXTRA'));
fs.writeFileSync(process.env.RECORD, JSON.stringify({ env, stdin: fs.readFileSync(0, 'utf8') }));
if (process.env.CNI_COMMAND === 'ADD') process.stdout.write(JSON.stringify({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.5.0.9/24', gateway: '10.5.0.1' }], dns: {} }));`,
);
plugin(bin1, 'recorder', 'process.exit(42) // shadowed? no: bin1 comes first and wins', 0o644); // not executable: skipped
plugin(bin2, 'failing', `process.stdout.write(JSON.stringify({ code: 100, msg: 'no free address', details: 'range set 0' })); process.exit(1);`);
plugin(bin2, 'crashing', `process.stderr.write('segfault-ish'); process.exit(2);`);
plugin(bin2, 'hanging', `setTimeout(() => {}, 60000);`);
plugin(bin2, 'garbage', `process.stdout.write('not json');`);
mkdirSync(join(bin1, 'dir-plugin'));

const record = join(root, 'record.json');
const conf = { cniVersion: '0.4.0', name: 'net', type: 'main', ipam: { type: 'recorder', subnet: '10.5.0.0/24' } };
const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/c1',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;X=y',
  CNI_PATH: `${bin1}:${bin2}`,
  RECORD: record,
  EXTRA: 'kept',
};
const stdin = Buffer.from(JSON.stringify(conf));
const req = parseRequest(env, stdin);

test('plugin types with path components are refused (CVE-2021-20206)', () => {
  for (const bad of ['../host-local', '/usr/lib/cni/host-local', 'a/b', '..', '.', '.hidden', 'x\0y', '', 'a..b', 'host local']) {
    assert.throws(
      () => validatePluginType(bad),
      (e: unknown) => (e as CniError).cniCode === 7,
      JSON.stringify(bad),
    );
  }
  for (const ok of ['host-local', 'netplumb-host-local', 'static', 'dhcp', 'my_plugin.v2', 'x+y']) assert.is(validatePluginType(ok), ok);
  assert.throws(() => ipamType(parseRequest(env, Buffer.from(JSON.stringify({ ...conf, ipam: { type: '../../bin/sh' } })))), /ipam\.type/);
  assert.throws(() => ipamType(parseRequest(env, Buffer.from(JSON.stringify({ ...conf, ipam: undefined })))), /no 'ipam' object/);
});

test('lookup: absolute CNI_PATH only, first executable regular file wins', () => {
  assert.is(findInPath('recorder', [bin1, bin2]), join(bin2, 'recorder'), 'the non-executable one in bin1 is skipped');
  assert.throws(
    () => findInPath('dir-plugin', [bin1]),
    (e: unknown) => (e as CniError).cniCode === 104,
  );
  assert.throws(
    () => findInPath('recorder', ['relative/bin', bin2]),
    (e: unknown) => (e as CniError).cniCode === 4 && /relative/.test((e as Error).message),
  );
  assert.throws(
    () => findInPath('recorder', []),
    (e: unknown) => (e as CniError).cniCode === 4 && /CNI_PATH is empty/.test((e as Error).message),
  );
  assert.throws(
    () => findInPath('nope', [bin1, bin2]),
    (e: unknown) => (e as CniError).cniCode === 104 && /failed to find plugin "nope"/.test((e as Error).message),
  );
});

test('a delegate gets our environment with the verb set, and the complete stdin unchanged', async () => {
  const r = await delegate('recorder', 'ADD', req);
  assert.equal(r, { cniVersion: '1.1.0', ips: [{ address: '10.5.0.9/24', gateway: '10.5.0.1' }] }, 'its 0.4.0 Result in the model');
  const got = JSON.parse(readFileSync(record, 'utf8'));
  assert.is(got.stdin, stdin.toString());
  assert.equal(got.env, {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/run/netns/c1',
    CNI_IFNAME: 'eth0',
    CNI_ARGS: 'IgnoreUnknown=1;X=y',
    CNI_PATH: `${bin1}:${bin2}`,
    EXTRA: 'kept',
  });
  assert.is(await delegate('recorder', 'DEL', req), undefined);
  assert.is(JSON.parse(readFileSync(record, 'utf8')).env.CNI_COMMAND, 'DEL');
  const gcReq = parseRequest(
    { CNI_COMMAND: 'GC', CNI_PATH: bin2, RECORD: record },
    Buffer.from(JSON.stringify({ ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] })),
  );
  await delegate('recorder', 'GC', gcReq);
  assert.equal(JSON.parse(readFileSync(record, 'utf8')).env, { CNI_COMMAND: 'GC', CNI_PATH: bin2 }, 'no empty CNI_* variables are invented');
  assert.equal(delegateEnv(req, 'CHECK').CNI_COMMAND, 'CHECK');
});

test("a delegate's error JSON comes back as its own code; a crash, garbage or a hang is error 105", async () => {
  const e = await assertRejects<CniError>(delegate('failing', 'ADD', req), { instance: CniError, cniCode: 100, message: /^no free address$/ });
  assert.is(e.details, 'range set 0');
  await assertRejects<CniError>(delegate('crashing', 'ADD', req), { instance: CniError, cniCode: 105, message: /plugin crashing exited 2: segfault-ish/ });
  await assertRejects<CniError>(delegate('garbage', 'ADD', req), { instance: CniError, cniCode: 105, message: /printed no JSON Result/ });
  await assertRejects<CniError>(delegate('hanging', 'DEL', req, { timeoutMs: 300 }), {
    instance: CniError,
    cniCode: 105,
    message: /plugin hanging timed out after 300 ms/,
  });
  await assertRejects<CniError>(delegate('recorder', 'ADD', parseRequest({ ...env, CNI_PATH: 'bin2' }, stdin)), {
    instance: CniError,
    cniCode: 4,
    message: /relative/,
  });
});

test.run();
