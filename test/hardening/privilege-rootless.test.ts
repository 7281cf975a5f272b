/**
 * Rootless: the plugins run by an unprivileged user inside a user namespace of their own
 * (`setpriv --reuid=65534 … unshare --user --map-root-user --net --mount`), as rootless podman and
 * rootlesskit run them. Everything happens inside that namespace (test/hardening/privilege-rootless-inner.ts
 * reports back): netplumb-bridge ADD with masquerade and a published port, CHECK, a ping to the gateway, DEL;
 * netplumb-container joining that container by its recorded ID (ADD, `ip -j addr` in the joined file, DEL);
 * netplumb-none; and what the kernel refuses there — entering a network namespace owned by the parent user
 * namespace — must be a clear CNI error (107) that changes nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, sandboxed } from '../../netns-harness/index.js';
import { ensurePluginBins } from '../fixtures/cni-runtime.js';

await sandboxed();
ensurePluginBins();

const INNER = fileURLToPath(new URL('./privilege-rootless-inner.js', import.meta.url));
const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const userns = ['unshare', '--user', '--map-root-user', '--net', '--mount', '--propagation', 'private', '--'];

async function skipWhy(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to switch to nobody';
  if ((await run([...asNobody, 'test', '-r', INNER], { check: false })).exitCode !== 0) return `${INNER} is not readable by nobody`;
  const u = await run([...asNobody, ...userns, 'true'], { check: false });
  if (u.exitCode !== 0) return `unprivileged user namespaces are disabled: ${u.stderr.trim()}`;
  return undefined;
}

test('rootless: bridge ADD/CHECK/DEL with masquerade and a published port, a ping, container join, none; a parent namespace is refused with 107', async () => {
  const why = await skipWhy();
  if (why) {
    console.log(`  (skipped: ${why})`);
    return;
  }
  // Made by root, mounted over by the user namespace: /run/netns, /run/netplumb and the IPAM dataDir.
  const dir = mkdtempSync('/run/np-rootless-');
  chmodSync(dir, 0o755);
  for (const d of ['/run/netns', '/run/netplumb', join(dir, 'ipam')]) mkdirSync(d, { recursive: true });
  // a namespace of the parent (initial) user namespace, reachable as a file without a ptrace check
  writeFileSync(join(dir, 'hostns'), '');
  await run(['mount', '--bind', '/proc/self/ns/net', join(dir, 'hostns')]);

  const r = await run([...asNobody, ...userns, process.execPath, INNER, dir], { check: false, timeoutMs: 120_000, env: { HOME: '/tmp' } });
  assert.is(r.exitCode, 0, `the inner script failed: ${r.stdout} ${r.stderr}`);
  const rep = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.match(rep.uidMap, /^0\s+65534\s+1$/, 'root inside is nobody outside');
  for (const s of ['bridge ADD', 'bridge CHECK', 'container ADD', 'container DEL', 'bridge DEL', 'none ADD', 'none DEL']) {
    assert.is(rep[s]?.exitCode, 0, `${s} works rootless: ${JSON.stringify(rep[s])}`);
  }
  const bridged = JSON.parse(rep['bridge ADD'].stdout).ips[0].address.split('/')[0];
  assert.is(rep.joinedSees, bridged, "the joined namespace file shows the bridged container's eth0 and address");
  assert.is(rep.ping.exitCode, 0, `the container reaches its gateway: ${rep.ping.out}`);
  assert.ok(rep.nft, "the published port is in the user namespace's nftables");
  assert.is(rep.vethsAfterDel, 0);
  const refused = rep['bridge ADD into a namespace of the parent user namespace'];
  assert.is(refused.exitCode, 1, JSON.stringify(refused));
  const doc = JSON.parse(refused.stdout);
  assert.is(doc.code, 107, refused.stdout);
  assert.match(doc.msg, /CAP_SYS_ADMIN.*user namespace/, 'the message says what is missing and why');
  assert.not.match(refused.stdout, /\n\s+at /);
  assert.ok(rep.unchangedAfterRefusal, 'the refusal changed no link and no IPAM file');
  await run(['umount', join(dir, 'hostns')]);
});

test.run();
