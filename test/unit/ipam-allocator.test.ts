/**
 * The allocator and its store, against real files in a mkdtemp directory: allocation order, wrap-around,
 * exhaustion, requested addresses, release, lookup, GC, the file format byte for byte, and the refusals
 * that keep a planted link or a hostile name from leading the store out of its directory.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocate, gc, lookup, release, status } from '../../lib/ipam/allocator.js';
import { parseIpamConfig, type IpamConfig } from '../../lib/ipam/config.js';
import { IpamError } from '../../lib/ipam/errors.js';
import { NetplumbError } from '../../lib/errors.js';
import { formatIp } from '../../lib/addr/ip.js';
import { Store } from '../../lib/ipam/store.js';

const root = mkdtempSync(join(tmpdir(), 'np-ipam-unit-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let seq = 0;

function conf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, envIp?: string): IpamConfig {
  return parseIpamConfig(
    { cniVersion: '1.0.0', name: 'net', ...extra, ipam: { type: 'netplumb-host-local', dataDir: join(root, `d${++seq}`), ...ipam } },
    { envIp },
  );
}
const att = (containerId: string, ifname = 'eth0') => ({ containerId, ifname });
async function addrs(c: IpamConfig, id: string, ifname = 'eth0'): Promise<string[]> {
  return (await allocate(c, att(id, ifname))).map((a) => a.cidr);
}
const dir = (c: IpamConfig) => join(c.dataDir, c.name);
const files = (c: IpamConfig) => readdirSync(dir(c)).sort();

test('allocation order: .2 first (the gateway .1 is skipped), then round robin upwards', async () => {
  const c = conf({ ranges: [[{ subnet: '10.1.0.0/29' }]] });
  for (const [i, want] of ['10.1.0.2/29', '10.1.0.3/29', '10.1.0.4/29'].entries()) assert.equal(await addrs(c, `c${i}`), [want]);
  const a = await allocate(c, att('c9'));
  assert.is(formatIp(a[0]!.gateway), '10.1.0.1');
});

test("store file format is host-local's byte for byte; files 0600, directory 0700", async () => {
  const c = conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/120' }]] });
  await allocate(c, att('3f6940ab5ab4', 'net1'));
  assert.equal(files(c), ['10.1.0.2', 'fd00::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
  assert.equal(readFileSync(join(dir(c), '10.1.0.2')), Buffer.from('3f6940ab5ab4\r\nnet1'));
  assert.equal(readFileSync(join(dir(c), 'fd00::2')), Buffer.from('3f6940ab5ab4\r\nnet1'));
  assert.equal(readFileSync(join(dir(c), 'last_reserved_ip.0'), 'utf8'), '10.1.0.2');
  assert.equal(readFileSync(join(dir(c), 'last_reserved_ip.1'), 'utf8'), 'fd00::2');
  assert.is(readFileSync(join(dir(c), 'lock')).length, 0);
  for (const f of files(c)) assert.is(statSync(join(dir(c), f)).mode & 0o777, 0o600, f);
  assert.is(statSync(dir(c)).mode & 0o777, 0o700);
  assert.ok(
    Store.open(c.dataDir, c.name)
      .inspect()
      .every((e) => e.problem === undefined),
  );
});

test('round robin continues after the last reserved address even when lower ones are freed, then wraps', async () => {
  const c = conf({ ranges: [[{ subnet: '10.1.0.0/29' }]] }); // .2–.6 usable
  for (let i = 0; i < 4; i++) await allocate(c, att(`c${i}`)); // .2 .3 .4 .5
  await release(c, att('c0')); // frees .2
  await release(c, att('c1')); // frees .3
  assert.equal(await addrs(c, 'n1'), ['10.1.0.6/29'], 'after .5 comes .6, not the freed .2');
  assert.equal(await addrs(c, 'n2'), ['10.1.0.2/29'], 'then wrap to the start');
  assert.equal(await addrs(c, 'n3'), ['10.1.0.3/29']);
  await assertRejects(allocate(c, att('n4')), {
    instance: IpamError,
    code: 'ERR_IPAM_EXHAUSTED',
    message: /no free address in range set 0 \(10\.1\.0\.1-10\.1\.0\.6\) of network "net": all 5 addresses are allocated/,
  });
});

test('a range set of several ranges is walked range after range, wrapping to the first', async () => {
  const c = conf({
    ranges: [
      [
        { subnet: '10.7.0.0/24', rangeStart: '10.7.0.3', rangeEnd: '10.7.0.4' },
        { subnet: '10.8.0.0/24', rangeStart: '10.8.0.9', rangeEnd: '10.8.0.10', gateway: '10.8.0.10' },
      ],
    ],
  });
  const got = [];
  for (let i = 0; i < 3; i++) got.push(...(await addrs(c, `c${i}`)));
  assert.equal(got, ['10.7.0.3/24', '10.7.0.4/24', '10.8.0.9/24'], 'the gateway 10.8.0.10 inside the window is skipped');
  await release(c, att('c0'));
  assert.equal(await addrs(c, 'c3'), ['10.7.0.3/24'], 'wrapped to the first range');
  await assertRejects(allocate(c, att('c4')), { instance: IpamError, code: 'ERR_IPAM_EXHAUSTED', message: /all 3 addresses/ });
});

test('IPv6 allocation and dual stack; exhaustion of one family rolls the other back', async () => {
  const c = conf({ ranges: [[{ subnet: 'fd00:1::/126' }], [{ subnet: '10.9.0.0/30' }]] });
  assert.equal(await addrs(c, 'a'), ['fd00:1::2/126', '10.9.0.2/30']);
  const before = files(c);
  await assertRejects(allocate(c, att('b')), {
    instance: IpamError,
    code: 'ERR_IPAM_EXHAUSTED',
    message: /range set 1 \(10\.9\.0\.1-10\.9\.0\.2\) of network "net"/,
  });
  assert.not.ok(existsSync(join(dir(c), 'fd00:1::3')), 'the IPv6 address taken before the failure is given back');
  assert.equal(files(c), before);
});

test('requested addresses: taken when free, refused when taken, the gateway or in no range; all or nothing', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, {}, '10.6.0.77');
  assert.equal(await addrs(c, 'a'), ['10.6.0.77/24', 'fd00::2/64']);
  await assertRejects(allocate(c, att('b')), {
    instance: IpamError,
    code: 'ERR_IPAM_UNAVAILABLE',
    message: /requested address 10\.6\.0\.77 is already allocated in range set 0/,
  });
  const gw = conf({ ranges: [[{ subnet: '10.6.0.0/24' }]] }, {}, '10.6.0.1');
  await assertRejects(allocate(gw, att('c')), { instance: IpamError, code: 'ERR_IPAM_UNAVAILABLE', message: /10\.6\.0\.1 is the gateway/ });
  const out = conf({ ranges: [[{ subnet: '10.6.0.0/24' }]] }, { runtimeConfig: { ips: ['10.7.0.5'] } });
  await assertRejects(allocate(out, att('d')), {
    instance: IpamError,
    code: 'ERR_IPAM_UNAVAILABLE',
    message: /failed to allocate all requested IPs: 10\.7\.0\.5/,
  });
  assert.not.ok(existsSync(dir(out)), 'an address in no range set is refused before the store is even created');
  const both = conf({ ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, { args: { cni: { ips: ['fd00::99', '10.6.0.99'] } } });
  assert.equal(await addrs(both, 'e'), ['10.6.0.99/24', 'fd00::99/64']);
  const two = conf({ ranges: [[{ subnet: '10.6.0.0/24' }]] }, { args: { cni: { ips: ['10.6.0.5', '10.6.0.6'] } } });
  await assertRejects(allocate(two, att('f')), {
    instance: IpamError,
    code: 'ERR_IPAM_UNAVAILABLE',
    message: /failed to allocate all requested IPs: 10\.6\.0\.6/,
  });
  assert.equal(
    files(two).filter((f) => f.startsWith('10.')),
    [],
  );
});

test('a repeated ADD returns what the attachment holds; asking for another address then is an error', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/24' }]] });
  assert.equal(await addrs(c, 'a'), ['10.6.0.2/24']);
  const again = await allocate(c, att('a'));
  assert.equal(
    again.map((x) => [x.cidr, x.existing]),
    [['10.6.0.2/24', true]],
  );
  assert.equal(await addrs(c, 'a', 'eth1'), ['10.6.0.3/24'], 'another interface is another attachment');
  const req = conf({ ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd00::/64' }]], dataDir: c.dataDir }, {}, '10.6.0.50');
  await assertRejects(allocate(req, att('a')), {
    instance: IpamError,
    code: 'ERR_IPAM_DUPLICATE',
    message: /a\/eth0 already holds 10\.6\.0\.2 in range set 0 .* cannot also get 10\.6\.0\.50/,
  });
  assert.not.ok(files(c).includes('fd00::2'), 'nothing of the failed ADD stays');
});

test('release: by container and interface, idempotent, legacy ID-only files, other attachments untouched', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/24' }], [{ subnet: 'fd00::/64' }]] });
  await allocate(c, att('a'));
  await allocate(c, att('a', 'eth1'));
  await allocate(c, att('b'));
  assert.equal((await release(c, att('a'))).sort(), ['10.6.0.2', 'fd00::2']);
  assert.equal(await release(c, att('a')), [], 'twice is fine');
  assert.equal(await lookup(c, att('a', 'eth1')), ['10.6.0.3', 'fd00::3']);
  writeFileSync(join(dir(c), '10.6.0.200'), 'legacy-id');
  assert.equal(await lookup(c, att('legacy-id', 'eth9')), ['10.6.0.200'], 'a legacy file matches any interface');
  assert.equal(await release(c, att('legacy-id', 'eth0')), ['10.6.0.200']);
  assert.equal(await release({ dataDir: join(root, 'never-created'), name: 'net' }, att('x')), [], 'no store, nothing to do');
  assert.not.ok(existsSync(join(root, 'never-created')), 'release creates nothing');
  assert.equal(await lookup(c, att('b')), ['10.6.0.4', 'fd00::4']);
});

test('GC keeps exactly the valid attachments; removes leaks, torn files, planted links and stale temps', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/24' }]] });
  for (const id of ['keep', 'leak1', 'leak2']) await allocate(c, att(id));
  await allocate(c, att('keep', 'eth1'));
  const d = dir(c);
  writeFileSync(join(d, '10.6.0.100'), ''); // reference host-local killed between create and write
  writeFileSync(join(d, '10.6.0.101'), 'old-keep'); // legacy format of a valid container
  writeFileSync(join(d, '10.6.0.102'), 'old-gone');
  writeFileSync(join(d, '10.6.0.103'), 'bad id with spaces\r\neth0');
  symlinkSync('/etc/passwd', join(d, '10.6.0.104'));
  writeFileSync(join(d, '.netplumb-tmp.1.1.x'), 'keep\r\neth0');
  writeFileSync(join(d, 'unrelated-file'), 'keep me');
  const removed = await gc(c, [att('keep'), att('old-keep', 'eth0')]);
  assert.equal(removed.sort(), ['10.6.0.100', '10.6.0.102', '10.6.0.103', '10.6.0.104', '10.6.0.3', '10.6.0.4', '10.6.0.5']);
  assert.equal(files(c), ['10.6.0.101', '10.6.0.2', 'last_reserved_ip.0', 'lock', 'unrelated-file']);
  assert.ok(existsSync('/etc/passwd'), 'the link was removed, not its target');
  assert.equal(await gc(c, []), ['10.6.0.101', '10.6.0.2'].sort());
  assert.equal(files(c), ['last_reserved_ip.0', 'lock', 'unrelated-file']);
  assert.equal(await addrs(c, 'fresh'), ['10.6.0.6/24'], 'freed addresses are reusable; round robin goes on');
});

test('names and planted links cannot lead the store out of its directory', async () => {
  for (const name of ['../x', '.hidden', 'a/b', '..', '', 'x y']) {
    assert.throws(
      () => Store.open(root, name),
      (e: unknown) => e instanceof IpamError && e.code === 'ERR_IPAM_CONFIG',
      name,
    );
  }
  assert.throws(() => Store.open('relative', 'net'), /absolute/);
  // The network directory is a link to elsewhere.
  const target = join(root, 'elsewhere');
  mkdirSync(target);
  const dd = join(root, `d${++seq}`);
  mkdirSync(dd);
  symlinkSync(target, join(dd, 'net'));
  await assertRejects(allocate(conf({ subnet: '10.6.0.0/24', dataDir: dd }), att('a')), {
    instance: IpamError,
    code: 'ERR_IPAM_UNSAFE_STORE',
    message: /is a symbolic link/,
  });
  assert.equal(readdirSync(target), [], 'nothing written through the link');
  // The lock is a link.
  const c = conf({ subnet: '10.6.0.0/24' });
  await allocate(c, att('a'));
  rmSync(join(dir(c), 'lock'));
  symlinkSync(join(target, 'lockfile'), join(dir(c), 'lock'));
  await assertRejects(allocate(c, att('b')), { instance: IpamError, code: 'ERR_IPAM_UNSAFE_STORE', message: /lock is a symbolic link/ });
  assert.not.ok(existsSync(join(target, 'lockfile')));
  // A link or a FIFO planted under an address's name: the address counts as taken, nothing is followed.
  const c2 = conf({ subnet: '10.6.0.0/24' });
  await allocate(c2, att('first'));
  symlinkSync(join(target, 'victim'), join(dir(c2), '10.6.0.3'));
  execFileSync('mkfifo', [join(dir(c2), '10.6.0.4')]);
  assert.equal(await addrs(c2, 'second'), ['10.6.0.5/24']);
  assert.not.ok(existsSync(join(target, 'victim')), 'the link target was never created');
  assert.ok(lstatSync(join(dir(c2), '10.6.0.3')).isSymbolicLink());
  assert.equal(await release(c2, att('second')), ['10.6.0.5']);
  assert.equal(readdirSync(target), []);
  // last_reserved_ip planted as a link is replaced (rename), never written through.
  rmSync(join(dir(c2), 'last_reserved_ip.0'));
  symlinkSync(join(target, 'lr'), join(dir(c2), 'last_reserved_ip.0'));
  await allocate(c2, att('third'));
  assert.not.ok(existsSync(join(target, 'lr')));
  assert.not.ok(lstatSync(join(dir(c2), 'last_reserved_ip.0')).isSymbolicLink());
});

test('a file-system failure of the store is a NetplumbError naming the store operation and the path', async () => {
  // A data directory below a regular file: the store's directory cannot even be looked at (ENOTDIR; root
  // passes permission checks, so no EACCES here).
  const file = join(root, `plain-file-${++seq}`);
  writeFileSync(file, '');
  const c = conf({ subnet: '10.6.0.0/24', dataDir: join(file, 'store') });
  for (const [what, call] of [
    ['ADD', () => allocate(c, att('a'))],
    ['STATUS', () => status(c)],
  ] as const) {
    const e = await assertRejects<NetplumbError>(
      call,
      { instance: NetplumbError, code: 'ENOTDIR', message: /^open ipam store \S+\/store\/net: ENOTDIR/ },
      what,
    );
    assert.equal([e.op, e.object], ['open ipam store', dir(c)], what);
    assert.is((e.cause as NodeJS.ErrnoException).code, 'ENOTDIR', `${what}: the fs error is kept as the cause`);
  }
});

test('a last_reserved_ip outside the range set (config changed) or unreadable restarts at rangeStart', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/24', rangeStart: '10.6.0.10' }]] });
  mkdirSync(dir(c), { recursive: true });
  writeFileSync(join(dir(c), 'last_reserved_ip.0'), '192.168.1.1');
  assert.equal(await addrs(c, 'a'), ['10.6.0.10/24']);
  writeFileSync(join(dir(c), 'last_reserved_ip.0'), 'garbage');
  assert.equal(await addrs(c, 'b'), ['10.6.0.11/24'], '.10 is taken, so the next');
  writeFileSync(join(dir(c), 'last_reserved_ip.0'), '10.6.0.254');
  assert.equal(await addrs(c, 'c'), ['10.6.0.12/24'], 'after the end, wrap: .10 .11 taken');
});

test('50 concurrent in-process allocations on one store get 50 distinct addresses', async () => {
  const c = conf({ ranges: [[{ subnet: '10.6.0.0/26' }]] }); // 61 usable
  const got = (await Promise.all(Array.from({ length: 50 }, (_, i) => addrs(c, `p${i}`)))).flat();
  assert.is(new Set(got).size, 50);
  await assertRejects(Promise.all(Array.from({ length: 20 }, (_, i) => addrs(c, `q${i}`))), {
    instance: IpamError,
    code: 'ERR_IPAM_EXHAUSTED',
    message: /network "net"/,
  });
  const st = await status(c);
  assert.is(st[0]!.used, 61n);
  assert.is(st[0]!.size, 61n);
});

test.run();
