/**
 * netplumb-host-local executed exactly as a runtime does (clean environment, config on stdin, Result or
 * error JSON on stdout, exit status), for every verb and every supported cniVersion; and bad input, case
 * by case: the right error code, one JSON document on stdout, exit 1, and not one byte of the store changed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxed, type Attachment } from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins, NETPLUMB_BIN, reservations, treeSnapshot, VERSIONS } from '../fixtures/cni-runtime.js';

await sandboxed();
ensurePluginBins();

const PLUGIN = 'netplumb-host-local';

/** An attachment and the verb to run on it; CNI_ARGS (`args`) is passed raw so that malformed values can be sent. */
type Invocation = Partial<Attachment> & { command: string };

/** netplumb-host-local alone in CNI_PATH. */
const rt = cniRuntime({ cniPath: [NETPLUMB_BIN] });
const root = mkdtempSync('/run/np-contract-');
let seq = 0;

function network(ipam: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, cniVersion = '1.1.0') {
  const dataDir = join(root, `d${++seq}`);
  const name = `net${seq}`;
  return {
    dataDir,
    dir: join(dataDir, name),
    conf: {
      cniVersion,
      name,
      type: 'bridge',
      ...extra,
      ipam: { type: 'netplumb-host-local', dataDir, ranges: [[{ subnet: '10.40.0.0/24' }], [{ subnet: 'fd40::/64' }]], ...ipam },
    },
  };
}

const att = (command: string, containerId = 'c1', more: Partial<Invocation> = {}): Invocation => ({
  command,
  containerId,
  ifname: 'eth0',
  netns: '/proc/self/ns/net',
  ...more,
});

for (const v of VERSIONS) {
  test(`cniVersion ${v}: ADD, CHECK, DEL (twice), STATUS and GC behave as the spec says`, async () => {
    const { dir, conf } = network({ routes: [{ dst: '0.0.0.0/0' }] }, {}, v);
    const add = await rt.exec('ADD', conf, att('ADD'), { plugin: PLUGIN });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    assert.is(add.stderr, '');
    const legacy = v.startsWith('0.');
    assert.equal(add.json, {
      cniVersion: v,
      ips: [
        { ...(legacy ? { version: '4' } : {}), address: '10.40.0.2/24', gateway: '10.40.0.1' },
        { ...(legacy ? { version: '6' } : {}), address: 'fd40::2/64', gateway: 'fd40::1' },
      ],
      routes: [{ dst: '0.0.0.0/0' }],
      ...(legacy ? { dns: {} } : {}),
    });
    assert.equal(
      [...reservations(dir)],
      [
        ['10.40.0.2', 'c1\r\neth0'],
        ['fd40::2', 'c1\r\neth0'],
      ],
    );

    const check = await rt.exec('CHECK', { ...conf, prevResult: add.json }, att('CHECK'), { plugin: PLUGIN });
    if (v === '0.3.0' || v === '0.3.1') {
      assert.is(check.exitCode, 1);
      assert.is(check.json.code, 1, 'CHECK needs 0.4.0');
    } else {
      assert.equal([check.exitCode, check.stdout], [0, '']);
      const wrong = await rt.exec('CHECK', { ...conf, prevResult: { ...add.json, ips: [{ ...add.json.ips[0], address: '10.40.0.99/24' }] } }, att('CHECK'), {
        plugin: PLUGIN,
      });
      assert.is(wrong.json.code, 103, 'a prevResult address that is not reserved is drift');
      const other = await rt.exec('CHECK', conf, att('CHECK', 'c2'), { plugin: PLUGIN });
      assert.is(other.json.code, 103);
      assert.match(other.json.msg, /c2\/eth0 holds no address of range set 0/);
    }
    for (const cmd of ['STATUS', 'GC']) {
      const o = await rt.exec(cmd, { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }, {}, { plugin: PLUGIN });
      if (v === '1.1.0') assert.equal([o.exitCode, o.stdout], [0, ''], `${cmd}: ${o.stdout}`);
      else assert.equal([o.exitCode, o.json.code], [1, 1], `${cmd} needs 1.1.0`);
    }
    assert.is(reservations(dir).size, 2, 'GC kept the valid attachment');
    for (let i = 0; i < 2; i++) {
      const del = await rt.exec('DEL', { ...conf, prevResult: add.json }, att('DEL', 'c1', { netns: undefined }), { plugin: PLUGIN });
      assert.equal([del.exitCode, del.stdout], [0, ''], 'DEL without CNI_NETNS, and again');
    }
    assert.is(reservations(dir).size, 0);
  });
}

test('GC releases what no valid attachment holds; STATUS reports an exhausted range (error 50)', async () => {
  const { dir, conf } = network({ ranges: [[{ subnet: '10.41.0.0/29' }]] });
  for (const id of ['a', 'b', 'c', 'd', 'e']) assert.is((await rt.exec('ADD', conf, att('ADD', id), { plugin: PLUGIN })).exitCode, 0);
  const st = await rt.exec('STATUS', conf, {}, { plugin: PLUGIN });
  assert.is(st.json.code, 50);
  assert.match(st.json.msg, /range set 0 \(10\.41\.0\.1-10\.41\.0\.6\) of network "net\d+" is exhausted: 5 of 5/);
  const full = await rt.exec('ADD', conf, att('ADD', 'f'), { plugin: PLUGIN });
  assert.is(full.json.code, 100);
  const gc = await rt.exec(
    'GC',
    {
      ...conf,
      'cni.dev/attachments': [
        { containerID: 'b', ifname: 'eth0' },
        { containerID: 'd', ifname: 'eth0' },
      ],
    },
    {},
    { plugin: PLUGIN },
  );
  assert.is(gc.exitCode, 0, gc.stdout);
  assert.equal([...reservations(dir).values()].sort(), ['b\r\neth0', 'd\r\neth0']);
  assert.equal([(await rt.exec('STATUS', conf, {}, { plugin: PLUGIN })).exitCode], [0]);
});

test("resolvConf becomes the Result's dns; requested IPs from CNI_ARGS, args and runtimeConfig", async () => {
  const rc = join(root, 'resolv.conf');
  writeFileSync(rc, '# comment\nnameserver 10.0.0.53\nnameserver fd00::53\nsearch a.example b.example\ndomain example\noptions ndots:2 rotate\n');
  const { conf } = network({ resolvConf: rc }, { args: { cni: { ips: ['fd40::77'] } }, runtimeConfig: { ips: ['10.40.0.66/24'] } });
  const o = await rt.exec('ADD', conf, att('ADD'), { plugin: PLUGIN });
  assert.is(o.exitCode, 0, o.stdout);
  assert.equal(o.json.dns, { nameservers: ['10.0.0.53', 'fd00::53'], domain: 'example', search: ['a.example', 'b.example'], options: ['ndots:2', 'rotate'] });
  assert.equal(
    o.json.ips.map((x: any) => x.address),
    ['10.40.0.66/24', 'fd40::77/64'],
  );
  const { conf: c2 } = network();
  const e = await rt.exec('ADD', c2, att('ADD', 'c1', { args: 'IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.40.0.9' }), { plugin: PLUGIN });
  assert.equal(
    e.json.ips.map((x: any) => x.address),
    ['10.40.0.9/24', 'fd40::2/64'],
  );
});

/** Bad input, one case each: [description, invocation, config (or a function of the network), code, message]. */
test('bad input gets the right code, a single error document, exit 1, and changes nothing', async () => {
  const { dataDir, conf } = network();
  // Something in the store that must survive every failed call untouched.
  assert.is((await rt.exec('ADD', conf, att('ADD', 'resident'), { plugin: PLUGIN })).exitCode, 0);
  const big = JSON.stringify({ ...conf, padding: 'x'.repeat(1 << 20) });
  const plantedDir = join(root, 'planted');
  mkdirSync(join(plantedDir, 'elsewhere'), { recursive: true });
  symlinkSync(join(plantedDir, 'elsewhere'), join(plantedDir, 'victim'));
  const bad = (ipam: Record<string, unknown>) => ({ ...conf, ipam: { ...conf.ipam, ...ipam } });
  const cases: Array<[string, Invocation, unknown, number, RegExp]> = [
    ['no CNI_COMMAND', { command: '' }, conf, 4, /CNI_COMMAND is missing/],
    ['unknown command', att('FROB'), conf, 4, /unknown CNI_COMMAND/],
    ['no container ID', { ...att('ADD'), containerId: undefined }, conf, 4, /CNI_CONTAINERID/],
    ['no netns for ADD', { ...att('ADD'), netns: undefined }, conf, 4, /CNI_NETNS/],
    ['container ID escaping', att('ADD', '../../etc/passwd'), conf, 4, /CNI_CONTAINERID/],
    ['container ID with CRLF', att('ADD', 'c1\r\neth9'), conf, 4, /CNI_CONTAINERID/],
    ['ifname too long', { ...att('ADD'), ifname: 'a-very-long-name0' }, conf, 4, /CNI_IFNAME .* longer than 15/],
    ['ifname with slash', { ...att('DEL'), ifname: '../x' }, conf, 4, /CNI_IFNAME/],
    ['ifname ..', { ...att('DEL'), ifname: '..' }, conf, 4, /CNI_IFNAME/],
    ['malformed CNI_ARGS', att('ADD', 'c9', { args: 'IP' }), conf, 4, /CNI_ARGS/],
    ['unknown CNI_ARGS', att('ADD', 'c9', { args: 'FOO=bar' }), conf, 4, /unknown args/],
    ['CNI_ARGS IP not an address', att('ADD', 'c9', { args: 'IP=10.40.0.300' }), conf, 4, /IP=10\.40\.0\.300/],
    ['undecodable JSON', att('ADD', 'c9'), '{"cniVersion":', 6, /error decoding/],
    ['stdin over 1 MiB', att('ADD', 'c9'), big, 5, /larger than 1048576/],
    ['cniVersion 0.2.0', att('ADD', 'c9'), { ...conf, cniVersion: '0.2.0' }, 1, /incompatible/],
    ['no cniVersion', att('ADD', 'c9'), { ...conf, cniVersion: undefined }, 1, /incompatible/],
    ['CHECK with 0.3.1', att('CHECK', 'resident'), { ...conf, cniVersion: '0.3.1' }, 1, /does not allow CHECK/],
    ['GC with 1.0.0', { command: 'GC' }, { ...conf, cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }, 1, /does not allow GC/],
    ['GC without attachments', { command: 'GC' }, conf, 7, /valid attachments/],
    ['no network name', att('ADD', 'c9'), { ...conf, name: '' }, 7, /missing network name/],
    ['network name escaping', att('ADD', 'c9'), { ...conf, name: '../../tmp' }, 7, /invalid characters found in network name/],
    ['no ipam', att('ADD', 'c9'), { ...conf, ipam: undefined }, 7, /missing 'ipam' key/],
    ['no ranges', att('ADD', 'c9'), bad({ ranges: undefined }), 7, /no IP ranges specified/],
    ['gateway outside', att('ADD', 'c9'), bad({ ranges: [[{ subnet: '10.42.0.0/24', gateway: '10.43.0.1' }]] }), 7, /gateway 10\.43\.0\.1 not in network/],
    [
      'rangeStart after rangeEnd',
      att('ADD', 'c9'),
      bad({ ranges: [[{ subnet: '10.42.0.0/24', rangeStart: '10.42.0.9', rangeEnd: '10.42.0.8' }]] }),
      7,
      /after rangeEnd/,
    ],
    ['host bits', att('ADD', 'c9'), bad({ ranges: [[{ subnet: '10.42.0.1/24' }]] }), 7, /host bits/],
    ['/31', att('ADD', 'c9'), bad({ ranges: [[{ subnet: '10.42.0.0/31' }]] }), 7, /too small/],
    ['overlap', att('ADD', 'c9'), bad({ ranges: [[{ subnet: '10.42.0.0/24' }], [{ subnet: '10.42.0.128/25' }]] }), 7, /overlaps/],
    ['relative dataDir', att('ADD', 'c9'), bad({ dataDir: 'var/lib/cni' }), 7, /absolute/],
    ['bad prevResult', att('CHECK', 'resident'), { ...conf, prevResult: { ips: [{ address: 'nope' }] } }, 7, /invalid prevResult/],
    ['requested IP taken', att('ADD', 'c9', { args: 'IP=10.40.0.2' }), conf, 101, /already allocated/],
    ['requested IP is the gateway', att('ADD', 'c9', { args: 'IP=10.40.0.1' }), conf, 101, /gateway/],
    ['requested IP in no range', att('ADD', 'c9', { args: 'IP=192.168.9.9' }), conf, 101, /failed to allocate all requested IPs: 192\.168\.9\.9/],
    ['another address for a holder', att('ADD', 'resident', { args: 'IP=10.40.0.50' }), conf, 102, /already holds 10\.40\.0\.2/],
    ['CHECK of an unknown container', att('CHECK', 'stranger'), conf, 103, /holds no address/],
    ['planted link as network dir', att('ADD', 'c9'), { ...conf, name: 'victim', ipam: { ...conf.ipam, dataDir: plantedDir } }, 106, /symbolic link/],
  ];
  for (const [what, inv, config, code, re] of cases) {
    const before = treeSnapshot(root);
    const o = await rt.exec(inv.command, config, inv, { plugin: PLUGIN });
    assert.is(o.exitCode, 1, `${what}: exit ${o.exitCode} ${o.stdout}`);
    assert.ok(o.json, `${what}: stdout is one JSON document: ${o.stdout}`);
    assert.is(o.json.code, code, `${what}: ${o.stdout}`);
    assert.match(o.json.msg, re, what);
    assert.is(typeof o.json.cniVersion, 'string', what);
    assert.not.match(o.stdout, /\n\s+at /, `${what}: no stack on stdout`);
    assert.match(o.stderr, /netplumb-host-local/, `${what}: logged on stderr`);
    assert.equal(treeSnapshot(root), before, `${what}: nothing changed`);
  }
  assert.equal([...reservations(join(dataDir, conf.name))].length, 2, 'the resident is still there');
});

test.run();
