/**
 * Interoperability with the reference: /usr/lib/cni/host-local and netplumb-host-local on one dataDir,
 * interleaved and concurrently. No duplicate address, no leak after the matching DELs, and each plugin
 * reads (CHECK, DEL, round robin) what the other wrote.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxed } from '../../netns-harness/index.js';
import { Store } from '../../lib/ipam/store.js';
import { cniRuntime, ensurePluginBins, pool, reservations } from '../fixtures/cni-runtime.js';
import { IPAM_ALLOCATIONS as N } from '../fixtures/budget.js';

await sandboxed();
ensurePluginBins();

const OURS = 'netplumb-host-local';
const REF = 'host-local';
const name = (p: string) => (p === OURS ? 'netplumb' : 'reference');
const rt = cniRuntime();
function network(net: string, ranges: unknown[], cniVersion = '1.0.0') {
  const dataDir = mkdtempSync('/run/np-interop-');
  return { dataDir, dir: join(dataDir, net), conf: { cniVersion, name: net, type: 'bridge', ipam: { type: 'host-local', dataDir, ranges } } };
}

const att = (containerId: string, ifname = 'eth0') => ({ containerId, ifname, netns: '/proc/self/ns/net' });

function wellFormed(dataDir: string, net: string): void {
  const entries = Store.open(dataDir, net, { create: false }).inspect();
  const bad = entries.filter((e) => e.problem !== undefined || e.kind === 'foreign' || e.kind === 'temp');
  assert.equal(bad, [], 'every file of the store is well formed');
}

test('interleaved: round robin continues across plugins; each CHECKs and DELs what the other wrote', async () => {
  const { dataDir, dir, conf } = network('interleaved', [[{ subnet: '10.20.0.0/24' }], [{ subnet: 'fd20::/64' }]]);
  const got: string[] = [];
  for (let i = 0; i < 12; i++) {
    const p = i % 2 === 0 ? OURS : REF;
    const o = await rt.exec('ADD', conf, att(`c${i}`), { plugin: p });
    assert.is(o.exitCode, 0, `${name(p)} ADD c${i}: ${o.stdout}${o.stderr}`);
    assert.equal(
      o.json.ips.map((x: any) => x.gateway),
      ['10.20.0.1', 'fd20::1'],
    );
    got.push(...o.json.ips.map((x: any) => x.address));
  }
  const want = Array.from({ length: 12 }, (_, i) => [`10.20.0.${i + 2}/24`, `fd20::${(i + 2).toString(16)}/64`]).flat();
  assert.equal(got, want, 'each allocator starts after the address the other reserved last');
  for (let i = 0; i < 12; i++) assert.is(reservations(dir).get(`10.20.0.${i + 2}`), `c${i}\r\neth0`);
  wellFormed(dataDir, 'interleaved');

  for (let i = 0; i < 12; i++) {
    const other = i % 2 === 0 ? REF : OURS;
    const chk = await rt.exec('CHECK', { ...conf, cniVersion: '1.0.0' }, att(`c${i}`), { plugin: other });
    assert.is(chk.exitCode, 0, `${name(other)} CHECK of c${i}: ${chk.stdout}`);
  }
  for (const p of [OURS, REF]) {
    const chk = await rt.exec('CHECK', conf, att('nobody'), { plugin: p });
    assert.is(chk.exitCode, 1, `${name(p)} CHECK of an unknown container fails`);
  }
  // Release every other one with the plugin that did not allocate it; the freed addresses are reused.
  for (let i = 0; i < 12; i += 2) {
    const other = i % 4 === 0 ? REF : OURS;
    const del = await rt.exec('DEL', conf, att(`c${i}`), { plugin: other });
    assert.is(del.exitCode, 0, `${name(other)} DEL c${i}: ${del.stdout}`);
  }
  assert.is(reservations(dir).size, 12);
  const next = await rt.exec('ADD', conf, att('late'), { plugin: REF });
  assert.equal(
    next.json.ips.map((x: any) => x.address),
    ['10.20.0.14/24', 'fd20::e/64'],
    'round robin, not the lowest free',
  );
  for (let i = 1; i < 12; i += 2) assert.is((await rt.exec('DEL', conf, att(`c${i}`), { plugin: i % 4 === 1 ? OURS : REF })).exitCode, 0);
  assert.is((await rt.exec('DEL', conf, att('late'), { plugin: OURS })).exitCode, 0);
  assert.equal([...reservations(dir).keys()], [], 'no leak');
  wellFormed(dataDir, 'interleaved');
});

test(`concurrent: ${N} allocations, 8 at a time, half by each; no duplicate; the other plugin's DELs leave nothing`, async () => {
  const { dataDir, dir, conf } = network('storm', [[{ subnet: '10.21.0.0/24' }], [{ subnet: 'fd21::/112' }]]);
  const ids = Array.from({ length: N }, (_, i) => `storm-${i}`);
  const adds = await pool(ids, 8, async (id, i) => {
    const p = i % 2 === 0 ? OURS : REF;
    const o = await rt.exec('ADD', conf, att(id), { plugin: p });
    assert.is(o.exitCode, 0, `${name(p)} ADD ${id}: ${o.stdout}${o.stderr}`);
    return o.json.ips.map((x: any) => x.address.split('/')[0]) as string[];
  });
  for (const fam of [0, 1]) {
    const addrs = adds.map((a) => a[fam]!);
    assert.is(new Set(addrs).size, N, `${N} distinct ${fam === 0 ? 'IPv4' : 'IPv6'} addresses`);
  }
  const res = reservations(dir);
  assert.is(res.size, 2 * N);
  adds.forEach((a, i) => {
    for (const ip of a) assert.is(res.get(ip), `${ids[i]}\r\neth0`, `${ip} is recorded for the container that got it`);
  });
  wellFormed(dataDir, 'storm');

  await pool(ids, 8, async (id, i) => {
    const p = i % 2 === 0 ? REF : OURS; // the plugin that did not allocate
    const o = await rt.exec('DEL', conf, att(id), { plugin: p });
    assert.is(o.exitCode, 0, `${name(p)} DEL ${id}: ${o.stdout}`);
  });
  assert.equal([...reservations(dir).keys()], [], 'no leak after the matching DELs');
  wellFormed(dataDir, 'storm');
});

test('concurrent exhaustion: 40 ADDs for 29 addresses give exactly 29 distinct ones; the losers leave nothing', async () => {
  const { dataDir, dir, conf } = network('tight', [[{ subnet: '10.22.0.0/27' }]]);
  const outs = await pool(
    Array.from({ length: 40 }, (_, i) => `t${i}`),
    8,
    (id, i) => rt.exec('ADD', conf, att(id), { plugin: i % 2 ? REF : OURS }),
  );
  const ok = outs.filter((o) => o.exitCode === 0);
  assert.is(ok.length, 29);
  assert.is(new Set(ok.map((o) => o.json.ips[0].address)).size, 29);
  for (const [i, o] of outs.entries()) {
    if (o.exitCode === 0) continue;
    if (i % 2 === 0) {
      assert.is(o.json.code, 100, o.stdout);
      assert.match(o.json.msg, /network "tight"/);
    } else assert.match(o.json.msg, /no IP addresses available/);
  }
  assert.is(reservations(dir).size, 29);
  wellFormed(dataDir, 'tight');
});

test('requested addresses and legacy files are understood by both', async () => {
  const { dir, conf } = network('req', [[{ subnet: '10.23.0.0/24' }]]);
  const a = await rt.exec('ADD', conf, { ...att('r1'), args: 'IP=10.23.0.50' }, { plugin: OURS });
  assert.is(a.json.ips[0].address, '10.23.0.50/24');
  const b = await rt.exec('ADD', conf, { ...att('r2'), args: 'IP=10.23.0.50' }, { plugin: REF });
  assert.match(b.json.msg, /not available/, "the reference sees netplumb's reservation");
  const c = await rt.exec('ADD', conf, { ...att('r3'), args: 'IP=10.23.0.60' }, { plugin: REF });
  assert.is(c.json.ips[0].address, '10.23.0.60/24');
  const d = await rt.exec('ADD', conf, { ...att('r4'), args: 'IP=10.23.0.60' }, { plugin: OURS });
  assert.is(d.json.code, 101, "netplumb sees the reference's reservation");
  assert.equal(
    reservations(dir),
    new Map([
      ['10.23.0.50', 'r1\r\neth0'],
      ['10.23.0.60', 'r3\r\neth0'],
    ]),
  );
});

test.run();
