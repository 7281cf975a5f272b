/**
 * Crash safety of netplumb-bridge: ADD and DEL killed with SIGKILL between every pair of
 * steps (fault points, `NETPLUMB_FAULT=kill:<point>`, lib/sys/fault.ts) and at moments nobody chose (a kill
 * after a seeded random delay). Afterwards:
 *  - at the moment of the kill, no IPAM file is torn (every reservation is `<id>\r\n<ifname>`, every
 *    last_reserved_ip an address; only netplumb's temporary files may be half written);
 *  - a DEL of the victim (the real plugin, executed) succeeds, and the host — links, addresses, routes, the
 *    nft ruleset, the IPAM store, /run/netplumb — is exactly as it was with only the survivors attached, and
 *    the victim's namespace holds nothing but lo;
 *  - without any DEL, a CNI GC naming the survivors does the same.
 * Oracles: `ip -j`, `nft -j`, the store's files (test/fixtures/storm.ts). Replay the random delays with
 * NETPLUMB_CRASH_SEED (the kernel's timing is not replayed, only the choices).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { createHost, destroyAll, must, sandboxed, type Container, type Host, type PluginRun } from '../../netns-harness/index.js';
import { bridgeConf } from '../fixtures/bridge-lab.js';
import { CRASH_ROUNDS as TIMED_ROUNDS } from '../fixtures/budget.js';
import { ADD_POINTS, containerLinks, DEL_POINTS, hostPicture, pictureDiff, seededRng, storeFiles } from '../fixtures/storm.js';
import { cniRuntime } from '../fixtures/cni-runtime.js';

await sandboxed();

const rng = seededRng('NETPLUMB_CRASH_SEED', 'crash-bridge');

let host: Host;
const conf = bridgeConf({
  name: 'crashnet',
  bridge: 'npcrash0',
  isGateway: true,
  ipMasq: true,
  macspoofchk: true,
  subnet: '10.90.0.0/24',
  routes: [{ dst: '0.0.0.0/0' }],
  capabilities: { portMappings: true },
});
const store = join(conf.ipam.dataDir, 'crashnet');
let port = 30000;
/** Every attachment publishes a port, so the ADD writes every kind of nft state (masquerade, DNAT, spoof). */
const confFor = () => ({ ...conf, runtimeConfig: { portMappings: [{ hostPort: port++, containerPort: 80, protocol: 'tcp' }] } });
const confs = new Map<string, any>();

async function add(c: Container, id: string, env: Record<string, string> = {}, killAfterMs?: number): Promise<PluginRun> {
  if (!confs.has(id)) confs.set(id, confFor());
  return cniRuntime({ host }).exec('ADD', confs.get(id), { containerId: id, netns: c.netnsPath, ifname: 'eth0' }, { env, timeoutMs: killAfterMs });
}
async function del(c: Container | undefined, id: string, env: Record<string, string> = {}, killAfterMs?: number): Promise<PluginRun> {
  return cniRuntime({ host }).exec(
    'DEL',
    confs.get(id) ?? conf,
    { containerId: id, netns: c?.netnsPath ?? '', ifname: 'eth0' },
    { env, timeoutMs: killAfterMs },
  );
}
const picture = () => hostPicture(host, [store]);

/** What a kill must never leave: a torn store file. */
function assertStoreWhole(what: string): void {
  assert.equal(storeFiles(store).problems, [], `${what}: every IPAM file is well formed`);
}

let baseline: Record<string, unknown>;
let victim: Container;
const survivors: { c: Container; id: string; result: any }[] = [];

test.before(async () => {
  host = await createHost('crash');
  // The survivors: attached before and untouched by everything below.
  for (const id of ['survivor-1', 'survivor-2']) {
    const c = await host.createContainer(id);
    survivors.push({ c, id, result: must(await add(c, id), `ADD ${id}`).json });
  }
  victim = await host.createContainer('victim');
  baseline = await picture();
});

test.after(async () => {
  await destroyAll();
});

/** DEL of the victim succeeds and the host is as it was with only the survivors. */
async function delAndCompare(id: string, what: string): Promise<void> {
  must(await del(victim, id), `${what}: DEL`);
  assert.equal(pictureDiff(baseline, await picture()), [], `${what}: after DEL the host holds exactly the survivors' state`);
  assert.equal(await containerLinks(victim), [], `${what}: nothing left in the victim's namespace`);
}

test('ADD killed at every fault point: no torn IPAM file, and DEL leaves exactly the survivors', async () => {
  for (const point of ADD_POINTS) {
    const id = `add-${point}`;
    const r = await add(victim, id, { NETPLUMB_FAULT: `kill:${point}` });
    assert.ok(r.killed, `ADD died of SIGKILL at ${point} (exit ${r.exitCode}, ${r.stdout} ${r.stderr.slice(0, 500)})`);
    assertStoreWhole(`ADD killed at ${point}`);
    await delAndCompare(id, `ADD killed at ${point}`);
  }
});

test('ADD failing (not killed) at every fault point rolls back by itself: no DEL needed', async () => {
  for (const point of ADD_POINTS) {
    const id = `fail-${point}`;
    const r = await add(victim, id, { NETPLUMB_FAULT: point });
    try {
      assert.ok(!r.ok && !r.killed && /fault injected/.test(r.stdout), `ADD failed at ${point} (exit ${r.exitCode}, ${r.stdout})`);
      assert.equal(pictureDiff(baseline, await picture()), [], `ADD failed at ${point}: the host holds exactly the survivors' state`);
      assert.equal(await containerLinks(victim), [], `ADD failed at ${point}: nothing in the victim's namespace`);
    } finally {
      must(await del(victim, id), `DEL after the failure at ${point}`); // so a failure here does not spill into the next tests
    }
  }
});

test('DEL killed at every fault point: the next DEL succeeds and leaves exactly the survivors', async () => {
  for (const point of DEL_POINTS) {
    const id = `del-${point}`;
    must(await add(victim, id), `ADD ${id}`);
    const r = await del(victim, id, { NETPLUMB_FAULT: `kill:${point}` });
    assert.ok(r.killed, `DEL died of SIGKILL at ${point} (exit ${r.exitCode}, ${r.stdout} ${r.stderr.slice(0, 500)})`);
    assertStoreWhole(`DEL killed at ${point}`);
    await delAndCompare(id, `DEL killed at ${point}`);
  }
});

test(`ADD and DEL killed after random delays (${TIMED_ROUNDS} rounds each): DEL leaves exactly the survivors`, async () => {
  // How long an undisturbed ADD and DEL take here, so the delays fall anywhere in them (start-up included).
  const adds: number[] = [];
  const dels: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    must(await add(victim, 'timing'), 'ADD timing');
    adds.push(Date.now() - t0);
    const t1 = Date.now();
    must(await del(victim, 'timing'), 'DEL timing');
    dels.push(Date.now() - t1);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
  const addMs = median(adds);
  const delMs = median(dels);
  let killedAdds = 0;
  let killedDels = 0;
  for (let i = 0; i < TIMED_ROUNDS; i++) {
    const id = `timed-${i}`;
    const a = await add(victim, id, {}, 1 + rng.int(addMs));
    if (a.killed) killedAdds++;
    else must(a, `ADD ${id}`);
    assertStoreWhole(`round ${i}: ADD killed`);
    const d = await del(victim, id, {}, 1 + rng.int(delMs));
    if (d.killed) killedDels++;
    else must(d, `DEL ${id}`);
    assertStoreWhole(`round ${i}: DEL killed`);
    await delAndCompare(id, `round ${i}`);
  }
  process.stdout.write(
    `timed kills: ${killedAdds}/${TIMED_ROUNDS} ADDs and ${killedDels}/${TIMED_ROUNDS} DELs died (ADD ${addMs} ms, DEL ${delMs} ms undisturbed)\n`,
  );
  assert.ok(killedAdds > 0 || TIMED_ROUNDS === 0, 'some ADD was killed');
});

test('kills without DEL: GC naming the survivors leaves exactly their state', async () => {
  const victims: { c: Container; id: string }[] = [];
  // One victim per ADD fault point, and one killed at a random moment, all alive together.
  for (const point of [...ADD_POINTS, 'timed']) {
    const id = `gc-${point}`;
    const c = await host.createContainer(id);
    const r = point === 'timed' ? await add(c, id, {}, 40 + rng.int(80)) : await add(c, id, { NETPLUMB_FAULT: `kill:${point}` });
    assert.ok(r.killed || point === 'timed', `ADD died at ${point}`);
    victims.push({ c, id });
  }
  // One whose DEL died half way, too.
  const c = await host.createContainer('gc-del');
  must(await add(c, 'gc-del'), 'ADD gc-del');
  assert.ok((await del(c, 'gc-del', { NETPLUMB_FAULT: 'kill:del-veth' })).killed);
  victims.push({ c, id: 'gc-del' });
  assertStoreWhole('after the kills');
  assert.ok(pictureDiff(baseline, await picture()).length > 0, 'the kills left something behind (or GC would have nothing to do)');

  const valid = ['survivor-1', 'survivor-2'].map((id) => ({ containerID: id, ifname: 'eth0' }));
  must(await cniRuntime({ host }).exec('GC', { ...conf, 'cni.dev/valid-attachments': valid }), 'GC');
  assert.equal(pictureDiff(baseline, await picture()), [], "after GC the host holds exactly the survivors' state");
  for (const v of victims) assert.equal(await containerLinks(v.c), [], `nothing left in ${v.id}'s namespace`);
  for (const s of survivors) {
    must(
      await cniRuntime({ host }).exec('CHECK', { ...confs.get(s.id), prevResult: s.result }, { containerId: s.id, netns: s.c.netnsPath, ifname: 'eth0' }),
      `CHECK ${s.id} after everything`,
    );
  }
});

test.run();
