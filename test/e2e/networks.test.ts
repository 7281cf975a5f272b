/**
 * lib/networks against the kernel: the test process's own (sandboxed) namespace plays the host, harness
 * containers are the targets. Defined networks carry traffic between their endpoints, connect is idempotent,
 * a second network gives eth1, a dead target is released by the next look, rm refuses while attached
 * and --force leaves nothing (bridge, veths, IPAM leases, files). Oracles: `ip -j`, ping, the files.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandboxed, createHost, ipJson, ping, type Host } from '../../netns-harness/index.js';
import { connect, createNetwork, disconnect, inspectNetwork, listEndpoints, listNetworks, parseTarget, removeNetwork } from '../../lib/networks/index.js';

/** `code: message` of the error `p` rejects with (a failure when it resolves). */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected a rejection');
}

/** `code: message` of the error `fn` throws (a failure when it returns). */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('expected a throw');
}

await sandboxed();

let holder: Host;
let root: string;
const opts = () => ({ root });

test.before(async () => {
  holder = await createHost('netsholder');
  root = mkdtempSync(join(tmpdir(), 'netplumb-networks-'));
});
test.after(async () => {
  await holder.destroy();
  rmSync(root, { recursive: true, force: true });
});

test('create validates and stores 0600/0700; ls lists; names, subnets and bridges are unique', () => {
  const n = createNetwork({ name: 'front', subnet: '10.77.1.0/24' }, opts());
  assert.is(n.gateway, '10.77.1.1');
  assert.is(n.bridge, 'np-front');
  assert.ok(n.masquerade);
  assert.is(statSync(join(root, 'networks')).mode & 0o777, 0o700);
  assert.is(statSync(join(root, 'networks/front/network.json')).mode & 0o777, 0o600);
  assert.match(
    thrown(() => createNetwork({ name: 'front' }, opts())),
    /^ERR_EXISTS: .*exists already/,
  );
  assert.match(
    thrown(() => createNetwork({ name: 'other', subnet: '10.77.0.0/16' }, opts())),
    /^ERR_IN_USE: .*overlaps network front/,
  );
  assert.match(
    thrown(() => createNetwork({ name: 'other', subnet: '10.77.5.0/24', bridge: 'np-front' }, opts())),
    /^ERR_IN_USE: bridge np-front belongs to network front/,
  );
  assert.match(
    thrown(() => createNetwork({ name: '../x' }, opts())),
    /^ERR_INVALID_NAME: invalid network name/,
  );
  assert.match(
    thrown(() => createNetwork({ name: 'x', bridge: 'br x' }, opts())),
    /^ERR_INVALID_NAME: bridge name "br x" is not an interface name: it may not contain whitespace/,
  );
  assert.match(
    thrown(() => createNetwork({ name: 'x', subnet: '10.77.2.1/24' }, opts())),
    /^ERR_INVALID_ADDRESS: .*host bits/,
  );
  assert.match(
    thrown(() => createNetwork({ name: 'x', subnet: '10.78.0.0/24', gateway: '10.79.0.1' }, opts())),
    /^ERR_INVALID_ADDRESS: .*not an address inside/,
  );
  const auto = createNetwork({ name: 'back', internal: true }, opts());
  assert.is(auto.subnet, '10.89.1.0/24');
  assert.not.ok(auto.masquerade);
  assert.equal(
    listNetworks(opts()).map((x) => x.name),
    ['back', 'front'],
  );
});

test('connect carries traffic, is idempotent, gives eth1 on a second network; disconnect and rm --force leave nothing', async () => {
  const a = await holder.createContainer('a');
  const b = await holder.createContainer('b');
  const ea = await connect('front', parseTarget(String(a.pid)), { ...opts(), name: 'web' });
  const eb = await connect('front', parseTarget(b.netnsPath), {
    ...opts(),
    ip: '10.77.1.50',
    publish: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
  });
  assert.is(ea.ifname, 'eth0');
  assert.equal(eb.addresses, ['10.77.1.50/24']);
  const again = await connect('front', parseTarget('web'), opts());
  assert.is(again.containerId, ea.containerId, 'the same namespace by name is the same endpoint');
  assert.is(listEndpoints('front', opts()).length, 2);
  assert.ok((await ping(a, '10.77.1.50')).ok, 'a reaches b over the network');
  const addrs = await ipJson<any[]>(['addr', 'show', 'dev', 'eth0'], a.netnsPath);
  assert.equal(
    addrs[0].addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`),
    ea.addresses,
  );

  const eb2 = await connect('back', parseTarget(b.netnsPath), opts());
  assert.is(eb2.ifname, 'eth1');
  const ins = await inspectNetwork('front', opts());
  assert.is(Object.keys(ins.containers).length, 2);
  assert.is(ins.containers[eb.containerId]!.ipv4Address, '10.77.1.50/24');

  await disconnect('back', parseTarget(b.netnsPath), opts());
  assert.equal((await ipJson<any[]>(['link', 'show'], b.netnsPath)).map((l) => l.ifname).sort(), ['eth0', 'lo']);
  assert.match(await failure(disconnect('back', parseTarget(b.netnsPath), opts())), /^ERR_NOT_FOUND: .*not attached/);

  // a target that exits is released by the next look
  await a.destroy();
  const after = await inspectNetwork('front', opts());
  assert.equal(Object.keys(after.containers), [eb.containerId]);

  assert.match(await failure(removeNetwork('front', opts())), /^ERR_IN_USE: .*attached endpoint/);
  await removeNetwork('front', { ...opts(), force: true });
  await removeNetwork('back', opts());
  const links = await ipJson<any[]>(['link', 'show']);
  assert.equal(
    links.filter((l) => l.ifname.startsWith('np-') || l.ifname.startsWith('veth')),
    [],
    'no bridge or veth left',
  );
  assert.equal(readdirSync(join(root, 'networks')), []);
  assert.equal(readdirSync(join(root, 'ipam')), []);
});

test('bad targets: a missing process, a non-namespace path, an unknown name; nothing changes', async () => {
  createNetwork({ name: 'bad', subnet: '10.77.9.0/24' }, opts());
  assert.match(await failure(connect('bad', parseTarget('3999999'), opts())), /^ERR_NOT_FOUND: there is no process 3999999/);
  assert.match(await failure(connect('bad', parseTarget('/etc/hostname'), opts())), /^ERR_NOT_A_NETNS: .*not a network namespace/);
  assert.match(await failure(connect('bad', parseTarget('nosuch'), opts())), /^ERR_NOT_FOUND: no namespace is named nosuch/);
  assert.match(await failure(connect('bad', parseTarget(String(process.pid)), opts())), /^ERR_NETNS_SELF: .*own network namespace/);
  assert.match(
    thrown(() => parseTarget('a b')),
    /^ERR_INVALID_NAME: .*neither a PID/,
  );
  assert.match(
    thrown(() => parseTarget('0')),
    /^ERR_INVALID_ARG_VALUE: 0 is not a process ID/,
  );
  assert.match(
    thrown(() => parseTarget('/run/../etc')),
    /^ERR_INVALID_ARG_VALUE: .*not a normalised absolute path/,
  );
  assert.equal(listEndpoints('bad', opts()), []);
  await removeNetwork('bad', opts());
});

test.run();
