/**
 * netplumb-bridge's attachment records (/run/netplumb/attachments/<id>/bridge:<network>:<ifname>), which let
 * netplumb-container join a bridge-attached container by its ID: ADD writes one naming the container's
 * namespace (path and inode), CHECK reports it missing, DEL removes it (idempotent, also without CNI_NETNS),
 * GC removes those the runtime no longer lists (only of its own network), and a failed ADD leaves none. The
 * oracle is the file tree and the namespace file's inode (stat), not the library.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { sandboxed, must } from '../../netns-harness/index.js';
import { treeSnapshot } from '../fixtures/cni-runtime.js';
import { bridgeConf, failure, hostPerTest, vethNames } from '../fixtures/bridge-lab.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';
import { nsId } from '../fixtures/modes.js';

await sandboxed();

const host = hostPerTest(test);
const A = '/run/netplumb/attachments';
/** The bridge records under /run/netplumb, by path. */
const records = () =>
  Object.keys(treeSnapshot(A))
    .filter((k) => k.includes('/bridge:'))
    .sort();

test('ADD records the attachment; CHECK needs it; DEL removes it, twice, also without CNI_NETNS', async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ isGateway: true, subnet: '10.60.0.0/24' });
  const c = await host.createContainer('r1');
  const att = { containerId: 'r1', netns: c.netnsPath, ifname: 'eth0' };
  const add = must(await rt.exec('ADD', conf, att));
  assert.equal(records(), ['r1/bridge:npnet:eth0']);
  const path = `${A}/r1/bridge:npnet:eth0`;
  const body = readFileSync(path, 'utf8');
  assert.equal(JSON.parse(body), { containerId: 'r1', network: 'npnet', ifname: 'eth0', mode: 'bridge', netns: c.netnsPath, netnsId: nsId(c.netnsPath) });
  must(await rt.exec('CHECK', { ...conf, prevResult: add.json }, att));

  rmSync(path);
  const drift = failure(await rt.exec('CHECK', { ...conf, prevResult: add.json }, att));
  assert.is(drift.code, 112, drift.msg);
  assert.match(drift.msg, /no attachment record/);
  writeFileSync(path, body, { mode: 0o600 });
  must(await rt.exec('CHECK', { ...conf, prevResult: add.json }, att));

  must(await rt.exec('DEL', conf, att));
  assert.equal(records(), []);
  must(await rt.exec('DEL', conf, att));
  must(await rt.exec('ADD', conf, att));
  must(await rt.exec('DEL', conf, { ...att, netns: '' }));
  assert.equal(records(), [], 'DEL without CNI_NETNS removes it too');
  assert.equal(await vethNames(host), []);
});

test('GC removes the records of this network the runtime no longer lists', async () => {
  const rt = cniRuntime({ host });
  const conf = bridgeConf({ subnet: '10.61.0.0/24' });
  const other = bridgeConf({ name: 'othernet', bridge: 'np-other0', subnet: '10.62.0.0/24' });
  for (const id of ['g1', 'g2']) {
    const c = await host.createContainer(id);
    must(await rt.exec('ADD', conf, { containerId: id, netns: c.netnsPath, ifname: 'eth0' }));
  }
  const o = await host.createContainer('o1');
  must(await rt.exec('ADD', other, { containerId: 'o1', netns: o.netnsPath, ifname: 'eth0' }));
  assert.equal(records(), ['g1/bridge:npnet:eth0', 'g2/bridge:npnet:eth0', 'o1/bridge:othernet:eth0']);
  must(await rt.exec('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'g1', ifname: 'eth0' }] }));
  assert.equal(records(), ['g1/bridge:npnet:eth0', 'o1/bridge:othernet:eth0'], "g2 forgotten, another network's record kept");
  must(await rt.exec('GC', { ...conf, 'cni.dev/valid-attachments': [] }));
  must(await rt.exec('GC', { ...other, 'cni.dev/valid-attachments': [] }));
  assert.equal(records(), []);
});

test("a failed ADD leaves no record (fault after the last step, and a repeated ADD keeps the first one's)", async () => {
  const conf = bridgeConf({ isGateway: true, ipMasq: true, subnet: '10.63.0.0/24' });
  const c = await host.createContainer('f1');
  const att = { containerId: 'f1', netns: c.netnsPath, ifname: 'eth0' };
  for (const step of ['veth', 'garp', 'firewall']) {
    const e = failure(await cniRuntime({ host, env: { NETPLUMB_FAULT: step } }).exec('ADD', conf, att));
    assert.match(e.msg, /fault injected/);
    assert.equal(records(), [], `fault after ${step}`);
  }
  must(await cniRuntime({ host }).exec('ADD', conf, att));
  const again = failure(await cniRuntime({ host }).exec('ADD', conf, att));
  assert.is(again.code, 111, again.msg);
  assert.equal(records(), ['f1/bridge:npnet:eth0'], "the refused repeat does not remove the first ADD's record");
  must(await cniRuntime({ host }).exec('DEL', conf, att));
  assert.equal(records(), []);
});

test.run();
