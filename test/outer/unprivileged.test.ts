/**
 * The suite without root: a test file run as `nobody` puts itself in a user namespace and still builds
 * hosts, containers and veths and pings across them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { run } from '../../netns-harness/index.js';

const HARNESS_TEST = fileURLToPath(new URL('../integration/harness.test.js', import.meta.url));
const asNobody = (argv: string[]) => ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', 'env', 'HOME=/tmp', ...argv];

test('the harness test passes as an unprivileged user', async () => {
  if (process.getuid?.() !== 0) {
    console.log('  (skipped: needs root to switch to nobody; the suite already runs unprivileged here)');
    return;
  }
  const readable = await run(asNobody(['test', '-r', HARNESS_TEST]), { check: false });
  if (readable.exitCode !== 0) {
    console.log(`  (skipped: ${HARNESS_TEST} is not readable by nobody from this checkout's location)`);
    return;
  }
  const userns = await run(asNobody(['unshare', '--user', '--map-root-user', '--net', 'true']), { check: false });
  if (userns.exitCode !== 0) {
    console.log(`  (skipped: unprivileged user namespaces are disabled here: ${userns.stderr.trim()})`);
    return;
  }
  const r = await run(asNobody([process.execPath, HARNESS_TEST]), { check: false, timeoutMs: 120_000 });
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Passed:\s+4/);
});

test.run();
