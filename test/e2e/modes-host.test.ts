/**
 * netplumb-host (Docker's --net=host) executed as a runtime executes it, in a harness host with a network of
 * its own (a veth pair, IPv4 and IPv6 addresses, default routes): every verb and every cniVersion; the Result
 * against `ip -j` in the host; CNI_NETNS compared by inode (another path to the host's namespace is the host's,
 * anything else is refused with error 8 and nothing changes anywhere).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { sandboxed, createHost, run, startEchoServer, waitFor, waitForExec, type Container, type Host, type CniCommand } from '../../netns-harness/index.js';
import { cniRuntime, ensurePluginBins } from '../fixtures/cni-runtime.js';
import { VERSIONS, addrView, assertVerbOfVersion, errorOf, expectedDescription, modesState } from '../fixtures/modes.js';

await sandboxed();
ensurePluginBins();

const PLUGIN = 'netplumb-host';
let host: Host;
let ctr: Container;
const conf = (cniVersion = '1.1.0', extra: Record<string, unknown> = {}) => ({ cniVersion, name: 'hostnet', type: PLUGIN, ...extra });
const exec = (command: CniCommand, config: unknown, c: { netns?: string | undefined; id?: string; args?: string } = {}) =>
  cniRuntime({ host }).exec(command, config, { containerId: c.id ?? 'hostctr', netns: c.netns, ifname: 'eth0', args: c.args }, { plugin: PLUGIN });

/** The host's links, addresses and routes: what must never change. */
async function hostView(): Promise<unknown> {
  const routes = await Promise.all(['-4', '-6'].map((f) => host.ip<any[]>(f, 'route', 'show', 'table', 'all')));
  return {
    addrs: await addrView(host),
    routes: routes
      .flat()
      .map((r) => JSON.stringify(r))
      .sort(),
  };
}

test.before(async () => {
  host = await createHost('hosthost');
  ctr = await host.createContainer('other');
  // the host's own network: an uplink with addresses and default routes through it
  for (const argv of [
    ['ip', 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'wire0'],
    ['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'uplink0'],
    ['ip', 'addr', 'add', '2001:db8::10/64', 'dev', 'uplink0', 'nodad'],
    ['ip', 'link', 'set', 'uplink0', 'up'],
    ['ip', 'link', 'set', 'wire0', 'up'],
    ['ip', 'route', 'add', 'default', 'via', '192.0.2.1'],
    ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8::1'],
  ]) {
    await host.exec(argv);
  }
  // let IPv6 settle (link-local addresses through DAD), so that "nothing changed" compares a still picture
  await waitFor(async () => {
    const tentative = (await host.ip<any[]>('-6', 'addr', 'show', 'tentative')).filter((l) => l.addr_info?.length);
    const local = (await host.ip<any[]>('-6', 'route', 'show', 'table', 'local')).filter((r) => r.dst.startsWith('fe80::'));
    return tentative.length === 0 && local.length === 2;
  });
});
test.after(async () => {
  await host.destroy();
});

for (const v of VERSIONS) {
  test(`cniVersion ${v}: ADD reports the host's network and creates nothing; CHECK, STATUS, GC, DEL`, async () => {
    const before = await hostView();
    const add = await exec('ADD', conf(v), { netns: host.netnsPath });
    assert.is(add.exitCode, 0, add.stdout + add.stderr);
    assert.is(add.stderr, '');
    const want = await expectedDescription(host.netnsPath, host.netnsPath);
    const legacy = v.startsWith('0.');
    const { cniVersion, ...got } = add.json;
    assert.is(cniVersion, v);
    if (legacy) {
      // 0.x: no mtu, ips carry their version, dns always present
      assert.equal(got, {
        interfaces: want.interfaces.map(({ mtu: _, ...i }) => i),
        ips: want.ips.map((ip) => ({ version: ip.address.includes(':') ? '6' : '4', ...ip })),
        routes: want.routes,
        dns: {},
      });
    } else {
      assert.equal(got, want);
    }
    assert.equal(want.interfaces.map((i) => i.name).sort(), ['uplink0', 'wire0']);
    assert.equal(
      want.ips.map((i) => [i.address, i.gateway]),
      [
        ['192.0.2.10/24', '192.0.2.1'],
        ['2001:db8::10/64', '2001:db8::1'],
      ],
    );
    assert.equal(await hostView(), before, 'ADD changed nothing');

    const check = await exec('CHECK', { ...conf(v), prevResult: add.json }, { netns: host.netnsPath });
    assertVerbOfVersion('CHECK', v, check);
    for (const cmd of ['STATUS', 'GC'] as const) {
      const r = await cniRuntime({ host }).exec(cmd, { ...conf(v), 'cni.dev/valid-attachments': [] }, {}, { plugin: PLUGIN });
      assertVerbOfVersion(cmd, v, r);
    }
    for (let i = 0; i < 2; i++) {
      const del = await exec('DEL', { ...conf(v), prevResult: add.json }, { netns: host.netnsPath });
      assert.equal([del.exitCode, del.stdout], [0, ''], del.stdout);
    }
    assert.equal(await hostView(), before, 'nothing changed at all');
    assert.equal(modesState().records, {}, 'host mode records nothing');
  });
}

test("the host's namespace is recognised by inode, whatever the path", async () => {
  // a bind mount of the host's namespace in /run/netns, as `ip netns attach` makes one
  await run(['ip', 'netns', 'attach', 'thehost', String(host.pid)]);
  // another process of the host's namespace
  const sleeper = spawn('nsenter', [`--net=${host.netnsPath}`, '--', 'sleep', '30'], { stdio: 'ignore' });
  try {
    await waitForExec(sleeper, 'sleep', 'nsenter … sleep');
    for (const path of ['/run/netns/thehost', '/var/run/netns/thehost', `/proc/${sleeper.pid}/ns/net`, '/proc/self/ns/net']) {
      const r = await exec('ADD', conf(), { netns: path });
      assert.is(r.exitCode, 0, `${path}: ${r.stdout}`);
      assert.ok(
        r.json.interfaces.every((i: any) => i.sandbox === path),
        path,
      );
      assert.is((await exec('CHECK', conf(), { netns: path })).exitCode, 0, path);
    }
  } finally {
    sleeper.kill('SIGKILL');
    await run(['ip', 'netns', 'delete', 'thehost']);
  }
});

test("a process started in CNI_NETNS after ADD is on the host's stack (its 127.0.0.1)", async () => {
  assert.is((await exec('ADD', conf(), { netns: host.netnsPath })).exitCode, 0);
  const srv = await startEchoServer(host, 9090, '127.0.0.1');
  try {
    const r = await run([process.execPath, '-e', 'const s=require("net").connect(9090,"127.0.0.1",()=>s.end("host"));s.pipe(process.stdout)'], {
      netns: host.netnsPath,
    });
    assert.is(r.stdout, 'host');
  } finally {
    await srv.stop();
  }
});

test('any other namespace is refused with error 8 (ADD, CHECK); nothing changes; DEL still succeeds', async () => {
  await run(['ip', 'netns', 'add', 'elsewhere']);
  writeFileSync('/run/plain-file', '');
  const cases: Array<[string, string, unknown, string | undefined, number, RegExp]> = [
    ["a container's namespace", 'ADD', conf(), ctr.netnsPath, 8, /not the host's .*refusing/],
    ['a named namespace of its own', 'ADD', conf('0.4.0'), '/run/netns/elsewhere', 8, /is network namespace net:\[\d+\], not the host's \(net:\[\d+\]/],
    ["CHECK in a container's namespace", 'CHECK', conf(), ctr.netnsPath, 8, /not the host's/],
    ['a namespace that does not exist', 'ADD', conf(), '/run/netns/nowhere', 3, /does not exist/],
    ['a file that is no namespace', 'ADD', conf(), '/run/plain-file', 4, /not a namespace file/],
    ['no CNI_NETNS', 'ADD', conf(), undefined, 4, /CNI_NETNS/],
    [
      'after another plugin',
      'ADD',
      conf('1.0.0', { prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }] } }),
      host.netnsPath,
      7,
      /must be the first plugin/,
    ],
  ];
  for (const [what, command, config, netns, code, re] of cases) {
    const hostBefore = await hostView();
    const ctrBefore = await addrView(ctr);
    const r = await exec(command as CniCommand, config, { netns });
    const err = errorOf(r);
    assert.ok(err, `${what}: ${r.exitCode} ${r.stdout}`);
    assert.is(err!.code, code, `${what}: ${r.stdout}`);
    assert.match(err!.msg, re, what);
    assert.match(r.stderr, /netplumb-host/, `${what}: logged on stderr`);
    assert.equal(await hostView(), hostBefore, `${what}: the host is unchanged`);
    assert.equal(await addrView(ctr), ctrBefore, `${what}: the container is unchanged`);
  }
  // DEL creates nothing and removes nothing, so it succeeds whatever CNI_NETNS is
  for (const netns of [ctr.netnsPath, '/run/netns/nowhere', '']) {
    const r = await exec('DEL', conf(), { netns });
    assert.equal([r.exitCode, r.stdout], [0, ''], `DEL with CNI_NETNS=${netns}`);
  }
  await run(['ip', 'netns', 'delete', 'elsewhere']);
});

test.run();
