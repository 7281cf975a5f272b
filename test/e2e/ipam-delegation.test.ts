/**
 * Delegation and chaining with real plugins:
 *  - lib/cni delegates IPAM to the reference host-local and static (exec from CNI_PATH), and to
 *    netplumb-host-local both by exec and in process, with identical results and identical stores;
 *  - the rollback helper gives the addresses back when a later step of ADD fails;
 *  - the reference bridge delegates its IPAM to netplumb-host-local inside a harness host;
 *  - Results in every version go through the reference meta plugins (portmap, tuning, bandwidth) and
 *    come back equal.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createHost, sandboxed } from '../../netns-harness/index.js';
import { delegate } from '../../lib/cni/delegate.js';
import { CniError } from '../../lib/cni/errors.js';
import { ipamAdd, ipamExec } from '../../lib/modes/ipam.js';
import { withRollback } from '../../lib/modes/steps.js';
import { parseRequest, type CniRequest } from '../../lib/cni/request.js';
import { convertResult, parseResult, type CniResult } from '../../lib/cni/types.js';
import { cniRuntime, ensurePluginBins, NETPLUMB_BIN, REFERENCE_BIN, reservations, treeSnapshot } from '../fixtures/cni-runtime.js';

await sandboxed();
ensurePluginBins();

const root = mkdtempSync('/run/np-delegation-');
let seq = 0;
const CNI_PATH = `${NETPLUMB_BIN}:${REFERENCE_BIN}`;

function request(command: string, conf: object, more: Record<string, string> = {}): CniRequest {
  const env: Record<string, string> = { PATH: process.env.PATH!, CNI_COMMAND: command, CNI_PATH, ...more };
  if (!['GC', 'STATUS'].includes(command)) Object.assign(env, { CNI_CONTAINERID: 'ctr1', CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/self/ns/net' }, more);
  return parseRequest(env, Buffer.from(JSON.stringify(conf)));
}

function hostLocalConf(type: string, cniVersion: string, dataDir = join(root, `d${++seq}`)) {
  return {
    cniVersion,
    name: 'delnet',
    type: 'netplumb-bridge',
    ipam: { type, dataDir, ranges: [[{ subnet: '10.50.0.0/24' }], [{ subnet: 'fd50::/64' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
}

const expected = (): CniResult => ({
  cniVersion: '1.1.0',
  ips: [
    { address: '10.50.0.2/24', gateway: '10.50.0.1' },
    { address: 'fd50::2/64', gateway: 'fd50::1' },
  ],
  routes: [{ dst: '0.0.0.0/0' }],
});

test('delegating to the reference host-local (exec) in 0.3.1, 0.4.0 and 1.0.0: ADD, CHECK, DEL', async () => {
  for (const v of ['0.3.1', '0.4.0', '1.0.0']) {
    const conf = hostLocalConf('host-local', v);
    const r = await delegate('host-local', 'ADD', request('ADD', conf));
    assert.equal(r, expected(), `${v}: the reference's Result in the model`);
    if (v !== '0.3.1') assert.is(await delegate('host-local', 'CHECK', request('CHECK', conf)), undefined);
    assert.is(reservations(join(conf.ipam.dataDir, 'delnet')).size, 2);
    await delegate('host-local', 'DEL', request('DEL', conf));
    assert.is(reservations(join(conf.ipam.dataDir, 'delnet')).size, 0);
  }
  const conf = hostLocalConf('host-local', '0.4.0');
  await delegate('host-local', 'ADD', request('ADD', conf));
  await assertRejects(() => delegate('host-local', 'ADD', request('ADD', conf, { CNI_CONTAINERID: 'ctr2', CNI_ARGS: 'IP=10.50.0.2' })), {
    instance: CniError,
    cniCode: 999,
    message: /requested IP address 10\.50\.0\.2 is not available/,
  });
});

test('delegating to the reference static plugin', async () => {
  const conf = {
    cniVersion: '1.0.0',
    name: 'staticnet',
    type: 'netplumb-bridge',
    ipam: {
      type: 'static',
      addresses: [{ address: '10.60.0.5/24', gateway: '10.60.0.1' }, { address: 'fd60::5/64' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.60.0.1' }],
      dns: { nameservers: ['10.60.0.53'] },
    },
  };
  const r = await ipamExec('ADD', request('ADD', conf));
  assert.equal(r, {
    cniVersion: '1.1.0',
    ips: [{ address: '10.60.0.5/24', gateway: '10.60.0.1' }, { address: 'fd60::5/64' }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.60.0.1' }],
    dns: { nameservers: ['10.60.0.53'] },
  });
  await ipamExec('DEL', request('DEL', conf));
});

test('netplumb-host-local by exec and in process: same Results, same store, for every verb', async () => {
  const a = join(root, 'exec');
  const b = join(root, 'inproc');
  const run = async (dataDir: string, inProcess: boolean) => {
    const conf = hostLocalConf('netplumb-host-local', '1.1.0', dataDir);
    const out: unknown[] = [];
    for (const id of ['x1', 'x2', 'x3']) out.push(await ipamExec('ADD', request('ADD', conf, { CNI_CONTAINERID: id }), { inProcess }));
    out.push(await ipamExec('CHECK', request('CHECK', conf, { CNI_CONTAINERID: 'x2' }), { inProcess }));
    out.push(await ipamExec('DEL', request('DEL', conf, { CNI_CONTAINERID: 'x1' }), { inProcess }));
    out.push(await ipamExec('GC', request('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'x3', ifname: 'eth0' }] }), { inProcess }));
    out.push(await ipamExec('STATUS', request('STATUS', conf), { inProcess }));
    for (const [cmd, id, code] of [
      ['ADD', 'x3', 102],
      ['CHECK', 'x9', 103],
    ] as const) {
      try {
        await ipamExec(cmd, request(cmd, conf, { CNI_CONTAINERID: id, CNI_ARGS: cmd === 'ADD' ? 'IP=10.50.0.99' : '' }), { inProcess });
        out.push('no error');
      } catch (e) {
        out.push([(e as CniError).cniCode, (e as Error).message]);
        assert.is((e as CniError).cniCode, code);
      }
    }
    return out;
  };
  const viaExec = await run(a, false);
  const inProc = await run(b, true);
  assert.equal(viaExec, inProc);
  assert.equal((viaExec[0] as CniResult).ips![0]!.address, '10.50.0.2/24');
  assert.equal(treeSnapshot(a), treeSnapshot(b));
  assert.equal([...reservations(join(b, 'delnet')).values()], ['x3\r\neth0', 'x3\r\neth0']);
});

test('rollback: a failure after IPAM ADD runs IPAM DEL (exec and in process)', async () => {
  for (const type of ['host-local', 'netplumb-host-local']) {
    const conf = hostLocalConf(type, '1.0.0');
    const req = request('ADD', conf);
    const e = await assertRejects<CniError>(
      withRollback(async (undo) => {
        const r = await ipamAdd(req, undo);
        assert.is(r.ips!.length, 2);
        assert.is(reservations(join(conf.ipam.dataDir, 'delnet')).size, 2);
        throw new CniError(999, 'veth creation failed');
      }),
      { message: /veth creation failed/ },
    );
    assert.is(e.details, undefined, 'the undo itself succeeded');
    assert.is(reservations(join(conf.ipam.dataDir, 'delnet')).size, 0, `${type}: addresses given back`);
  }
});

test('the reference bridge delegates its IPAM to netplumb-host-local', async () => {
  const host = await createHost('bridgehost');
  const ctr = await host.createContainer('c1');
  const dataDir = join(root, 'bridge');
  const conf = {
    cniVersion: '1.0.0',
    name: 'refbr',
    type: 'bridge',
    bridge: 'nptest0',
    isGateway: true,
    ipam: { type: 'netplumb-host-local', dataDir, ranges: [[{ subnet: '10.70.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
  };
  const rt = cniRuntime({ host });
  const list = { cniVersion: conf.cniVersion, name: conf.name, plugins: [conf] };
  const att = { containerId: 'brctr', netns: ctr.netnsPath, ifname: 'eth0' };
  const result = parseResult(await rt.add(list, att));
  assert.is(result.ips![0]!.address, '10.70.0.2/24');
  const addrs = await ctr.ip<any[]>('-4', 'addr', 'show', 'dev', 'eth0');
  assert.equal(
    addrs[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`),
    ['10.70.0.2/24'],
    'the container has the address netplumb allocated',
  );
  assert.equal([...reservations(join(dataDir, 'refbr'))], [['10.70.0.2', 'brctr\r\neth0']]);
  await rt.check(list, att);
  await rt.del(list, att);
  assert.is(reservations(join(dataDir, 'refbr')).size, 0);
  await host.destroy();
});

test('Results of every version pass through the reference meta plugins and come back equal', async () => {
  const host = await createHost('metahost');
  const ctr = await host.createContainer('m1');
  const model: CniResult = {
    cniVersion: '1.1.0',
    interfaces: [
      { name: 'br0', mac: '0a:58:0a:01:00:01' },
      { name: 'eth0', mac: '0a:58:0a:01:00:02', sandbox: ctr.netnsPath },
    ],
    ips: [
      { address: '10.80.0.2/24', gateway: '10.80.0.1', interface: 1 },
      { address: 'fd80::2/64', gateway: 'fd80::1', interface: 1 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.80.0.1' }],
    dns: { nameservers: ['10.80.0.1'] },
  };
  const rt = cniRuntime({ cniPath: [REFERENCE_BIN] });
  const att = { containerId: 'meta1', ifname: 'eth0', netns: ctr.netnsPath };
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0']) {
    for (const p of ['portmap', 'tuning', 'bandwidth']) {
      const prev = convertResult(model, v);
      const conf = { cniVersion: v, name: 'meta', type: p, ...(p === 'portmap' ? { capabilities: { portMappings: true } } : {}), prevResult: prev };
      const o = await rt.exec('ADD', conf, att);
      assert.is(o.exitCode, 0, `${p} ${v}: ${o.stdout}${o.stderr}`);
      const back = parseResult(o.json, { defaultVersion: v });
      assert.equal(convertResult(back, v), prev, `${p} ${v}: the Result came back as it went`);
      const del = await rt.exec('DEL', conf, att);
      assert.is(del.exitCode, 0, `${p} ${v} DEL: ${del.stdout}`);
    }
  }
  await host.destroy();
});

test.run();
