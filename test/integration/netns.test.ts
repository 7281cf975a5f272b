/** Namespaces: named ones like `ip netns add`, by PID, identity, the own-namespace guard, stale entries. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { existsSync, lstatSync, openSync, closeSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { sandboxed, createHost, run, ipJson, waitForExec } from '../../netns-harness/index.js';
import {
  createNamedNetnsSync,
  deleteNamedNetnsSync,
  listNamedNetnsSync,
  openNetnsSync,
  currentNetnsSync,
  isSameNetnsSync,
  attachNetnsSync,
  removeStaleNetnsSync,
  openHandleSync,
  createVethPair,
  NETNS_RUN_DIR,
} from '../../lib/index.js';

await sandboxed();

const mountsAt = (path: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === path);

test('createNamedNetnsSync makes what `ip netns` sees, bind-mounted in the sandbox only', async () => {
  const before = readlinkSync('/proc/self/ns/net');
  const ns = createNamedNetnsSync('np-a');
  try {
    assert.is(readlinkSync('/proc/self/ns/net'), before, 'the process is back in its own namespace');
    const listed = (await run(['ip', 'netns', 'list'])).stdout;
    assert.match(listed, /^np-a\b/m);
    // a namespace of its own: only lo, and not the sandbox's
    const links = await ipJson<any[]>(['link', 'show'], `${NETNS_RUN_DIR}/np-a`);
    assert.equal(
      links.map((l) => l.ifname),
      ['lo'],
    );
    assert.is.not(readlinkSync(`/proc/self/fd/${ns.fd}`), before);
    // `ip netns exec` can use it
    const r = await run(['ip', 'netns', 'exec', 'np-a', 'ip', '-j', 'link', 'show']);
    assert.equal(
      JSON.parse(r.stdout).map((l: any) => l.ifname),
      ['lo'],
    );
    // The bind mount is in this (sandbox) mount namespace, on the sandbox's private /run tmpfs; /run/netns
    // is a shared mount (as iproute2 makes it) under that private tmpfs, so nothing propagates to the machine.
    const m = mountsAt('/run/netns/np-a');
    assert.is(m.length, 1, 'one nsfs bind mount on the file');
    assert.match(m[0]!, / - nsfs /);
    const runMount = mountsAt('/run');
    assert.ok(
      runMount.some((l) => / - tmpfs /.test(l)),
      '/run is a tmpfs in the sandbox',
    );
    assert.match(mountsAt('/run/netns')[0]!, /shared:/);
    // /run's parent is the sandbox's own mount: the tmpfs was mounted by the sandbox in its private mount
    // namespace (the runner's before/after snapshot of the machine's mounts and /var/run/netns checks the rest).
    const runId = runMount.find((l) => / - tmpfs /.test(l))!.split(' ')[0];
    assert.is(mountsAt('/run/netns')[0]!.split(' ')[1], runId, "/run/netns sits on the sandbox's /run tmpfs");
  } finally {
    ns.close();
  }
  await assertRejects(() => createNamedNetnsSync('np-a'), { code: 'EEXIST' });
  deleteNamedNetnsSync('np-a');
  assert.not.ok(existsSync('/run/netns/np-a'));
  assert.equal(mountsAt('/run/netns/np-a'), []);
  assert.not.match((await run(['ip', 'netns', 'list'])).stdout, /np-a/);
});

test('a namespace made by `ip netns add` opens by name, and the library lists it', async () => {
  await run(['ip', 'netns', 'add', 'np-b']);
  try {
    const ns = openNetnsSync({ name: 'np-b' });
    const byPath = openNetnsSync({ path: '/var/run/netns/np-b' });
    try {
      assert.ok(ns.isSame(byPath));
      assert.is(ns.name, 'np-b');
    } finally {
      ns.close();
      byPath.close();
    }
    const e = listNamedNetnsSync().find((x) => x.name === 'np-b');
    assert.ok(e && e.alive && !e.symlink);
  } finally {
    await run(['ip', 'netns', 'del', 'np-b']);
  }
});

test('identity by inode: a PID, its /proc path and an fd are the same namespace; others are not', async () => {
  const host = await createHost('h');
  try {
    assert.ok(isSameNetnsSync({ pid: host.pid }, { path: host.netnsPath }));
    const fd = openSync(host.netnsPath, 'r');
    try {
      assert.ok(isSameNetnsSync({ fd }, { pid: host.pid }));
    } finally {
      closeSync(fd);
    }
    const c = await host.createContainer('c');
    assert.not.ok(isSameNetnsSync({ pid: host.pid }, { pid: c.pid }));
    const cur = currentNetnsSync();
    try {
      assert.is(`net:[${cur.ino}]`, readlinkSync('/proc/self/ns/net'));
      assert.ok(isSameNetnsSync(cur, { pid: process.pid }));
    } finally {
      cur.close();
    }
  } finally {
    await host.destroy();
  }
});

test("asking for another namespace that is the caller's own is refused, unless allowed", async () => {
  for (const ref of [{ pid: process.pid }, { path: '/proc/self/ns/net' }]) {
    await assertRejects(() => openHandleSync(ref), { code: 'ERR_NETNS_SELF' }, `${JSON.stringify(ref)} must be refused`);
  }
  const h = openHandleSync({ pid: process.pid }, { allowCurrent: true });
  h.close();
  await assertRejects(() => openNetnsSync({ path: '/etc/hostname' }), { code: 'ERR_NOT_A_NETNS', message: /not a network namespace/ });
  await assertRejects(() => openNetnsSync({ name: '../etc' }), { code: 'ERR_INVALID_NAME' });
});

test("attach a PID's namespace by bind mount and by symlink; stale entries are removed", async () => {
  // a process started outside the library, like a container runtime would
  const proc = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  await waitForExec(proc, 'sleep', 'unshare -n sleep');
  const bound = attachNetnsSync('np-bound', proc.pid!);
  const linked = attachNetnsSync(String(proc.pid), proc.pid!, { symlink: true });
  try {
    assert.ok(bound.isSame(linked));
    assert.is(readlinkSync(`/var/run/netns/${proc.pid}`), `/proc/${proc.pid}/ns/net`);
    assert.ok(lstatSync(`/var/run/netns/${proc.pid}`).isSymbolicLink());
    // the library can build in it, and iproute2 sees it through the symlink
    const h = openHandleSync({ name: String(proc.pid) });
    try {
      await createVethPair(h, { name: 'a0', peer: { name: 'b0' } });
    } finally {
      h.close();
    }
    const links = await ipJson<any[]>(['-n', String(proc.pid), 'link', 'show']);
    assert.equal(links.map((l) => l.ifname).sort(), ['a0', 'b0', 'lo']);
  } finally {
    bound.close();
    linked.close();
  }
  // a plain file with nothing mounted on it is stale as well
  writeFileSync('/var/run/netns/np-empty', '');
  proc.kill('SIGKILL');
  await exited;
  const entries = Object.fromEntries(listNamedNetnsSync().map((e) => [e.name, e.alive]));
  assert.equal(entries, { 'np-bound': true, [String(proc.pid)]: false, 'np-empty': false }, 'the bind mount keeps the namespace alive, the symlink dangles');
  assert.equal(removeStaleNetnsSync().sort(), [String(proc.pid), 'np-empty'].sort());
  // the guide's check: nothing dangling is left
  const dangling = await run(['find', '-L', '/var/run/netns', '-type', 'l']);
  assert.is(dangling.stdout.trim(), '');
  deleteNamedNetnsSync('np-bound');
  assert.equal(listNamedNetnsSync(), []);
});

test.run();
