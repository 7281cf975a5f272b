/**
 * A process that remembers IPAM stores between operations (rememberStores(), as netplumbd does) must see
 * every change other processes made under the lock: the reference host-local allocating, releasing, and
 * handing the same address to another container; the store directory replaced. The oracle is the store's
 * files as read from disk (reservations()), and the reference plugin's own answers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { must, sandboxed } from '../../netns-harness/index.js';
import { allocate, lookup, release } from '../../lib/ipam/allocator.js';
import { parseIpamConfig } from '../../lib/ipam/config.js';
import { rememberStores } from '../../lib/ipam/store.js';
import { assertRejects } from '../fixtures/assert.js';
import { cniRuntime, reservations } from '../fixtures/cni-runtime.js';

await sandboxed();
await rememberStores();

const rt = cniRuntime();
const REF = 'host-local';

function network(net: string) {
  const dataDir = mkdtempSync('/run/np-memo-');
  const netconf = { cniVersion: '1.0.0', name: net, type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.40.0.0/29' }]] } };
  return { dataDir, dir: join(dataDir, net), netconf, conf: parseIpamConfig(netconf), ref: { dataDir, name: net } };
}
const att = (containerId: string) => ({ containerId, ifname: 'eth0' });
const refAdd = async (netconf: unknown, id: string) =>
  must(await rt.exec('ADD', netconf, { ...att(id), netns: '/proc/self/ns/net' }, { plugin: REF }), `reference ADD ${id}`);
const refDel = async (netconf: unknown, id: string) =>
  must(await rt.exec('DEL', netconf, { ...att(id), netns: '/proc/self/ns/net' }, { plugin: REF }), `reference DEL ${id}`);

test('what the reference plugin allocates and releases between two remembered operations is seen', async () => {
  const n = network('seen');
  const [a] = await allocate(n.conf, att('ours-1'));
  assert.is(a!.cidr, '10.40.0.2/29');
  const r = await refAdd(n.netconf, 'ref-1');
  assert.is(r.json.ips[0].address, '10.40.0.3/29', "the reference continues after netplumb's last");
  const [b] = await allocate(n.conf, att('ours-2'));
  assert.is(b!.cidr, '10.40.0.4/29', "the reference's reservation is not handed out again");
  assert.equal(await lookup(n.ref, att('ref-1')), ['10.40.0.3'], "the reference's holder is found");
  assert.equal(await release(n.ref, att('ref-1')), ['10.40.0.3'], "netplumb releases the reference's reservation");
  assert.is(reservations(n.dir).has('10.40.0.3'), false);
  await refDel(n.netconf, 'ours-2');
  assert.equal(await lookup(n.ref, att('ours-2')), [], 'released by the reference: gone for netplumb too');
  assert.equal([...reservations(n.dir).keys()], ['10.40.0.2']);
});

test('an address released and given to another container by the reference has its new owner', async () => {
  const n = network('reused');
  for (const id of ['x0', 'x1', 'x2', 'x3', 'x4']) await allocate(n.conf, att(id)); // .2 … .6
  assert.equal(await lookup(n.ref, att('x2')), ['10.40.0.4'], 'remembered: x2 holds .4');
  await refDel(n.netconf, 'x2');
  // The range has 5 usable addresses (.2–.6, .1 is the gateway): the only free one now is .4.
  const r = await refAdd(n.netconf, 'intruder');
  assert.is(r.json.ips[0].address, '10.40.0.4/29');
  assert.is(reservations(n.dir).get('10.40.0.4'), 'intruder\r\neth0');
  assert.equal(await lookup(n.ref, att('x2')), [], 'x2 no longer holds .4');
  assert.equal(await lookup(n.ref, att('intruder')), ['10.40.0.4']);
  assert.equal(await release(n.ref, att('x2')), [], "releasing x2 does not take the intruder's address");
  assert.is(reservations(n.dir).get('10.40.0.4'), 'intruder\r\neth0');
  await assertRejects(() => allocate(n.conf, att('one-too-many')), { code: 'ERR_IPAM_EXHAUSTED' }, 'an ADD into the full range');
});

test('a store directory removed and made again is read afresh', async () => {
  const n = network('replaced');
  await allocate(n.conf, att('before'));
  rmSync(n.dir, { recursive: true });
  await refAdd(n.netconf, 'after');
  assert.equal(await lookup(n.ref, att('before')), [], 'nothing remembered from the removed directory');
  assert.equal(await lookup(n.ref, att('after')), ['10.40.0.2']);
  const [c] = await allocate(n.conf, att('next'));
  assert.is(c!.cidr, '10.40.0.3/29');
});

test.run();
