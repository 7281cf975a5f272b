/**
 * The files that care about the machine's state, run as on a machine where Docker or podman ran: `/` private,
 * /run/netns a shared mount with a namespace in it, and new namespaces starting with ip_forward=1
 * (test/fixtures/used-host.ts plays that machine inside private mount and network namespaces of its own).
 * The rest of the suite creates everything it checks; these read mounts or per-namespace IPv4 settings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { run, taggedProcesses } from '../../netns-harness/index.js';

const USED_HOST = fileURLToPath(new URL('../fixtures/used-host.js', import.meta.url));
const dist = (f: string) => fileURLToPath(new URL(`../${f}`, import.meta.url));

/** the files whose subject is mounts, named namespaces or per-namespace sysctls */
const SENSITIVE = [
  'integration/netns.test.js',
  'integration/neigh-sysctl-events.test.js',
  'integration/walkthrough.test.js',
  'integration/harness.test.js',
  'e2e/bridge-verbs.test.js',
];

test("the files that read the host's state pass on a host with ip_forward=1 and a private /", async () => {
  // a run ID of its own: the inner runner checks for leftovers of exactly its files
  const id = `np-usedhost-${randomBytes(4).toString('hex')}`;
  const r = await run([process.execPath, USED_HOST, id, ...SENSITIVE.map(dist)], { check: false, timeoutMs: 300_000 });
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`${SENSITIVE.length} files, 0 failed`));
  assert.equal(taggedProcesses(id), []);
});

test.run();
