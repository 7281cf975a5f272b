/** The README's demo, run as a user runs it: it prints addresses and a successful ping, and changes nothing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { diffSnapshots, run, takeSnapshot, taggedProcesses, RUN_ID_ENV } from '../../netns-harness/index.js';

const DEMO = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));

test('the demo builds a bridge network, shows a ping, and leaves the machine as it was', async () => {
  const before = await takeSnapshot();
  const id = `np-demo-${randomBytes(4).toString('hex')}`;
  const r = await run([process.execPath, DEMO], { env: { [RUN_ID_ENV]: id }, timeoutMs: 60_000, check: false });
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /container web .* 10\.88\.0\.2\/24/);
  assert.match(r.stdout, /container client .* 10\.88\.0\.3\/24/);
  // ping -c 3 -w: on a loaded machine a late reply makes it send a fourth; three replies are what counts
  assert.match(r.stdout, /ping client -> web \(10\.88\.0\.2\): [3-9]\/\d+ replies/);
  assert.match(r.stdout, /\d+ packets transmitted, [3-9] received/);
  assert.equal(taggedProcesses(id), []);
  assert.equal(diffSnapshots(before, await takeSnapshot()), []);
});

test.run();
