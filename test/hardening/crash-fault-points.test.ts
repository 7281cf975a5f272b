/**
 * The fault points themselves (lib/sys/fault.ts): inert without NETPLUMB_FAULT or when it names another point,
 * a thrown InjectedFault for `<point>`, a death by SIGKILL for `kill:<point>` (checked in a child process, which
 * is what the crash tests rely on). No privilege needed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { faultPoint, InjectedFault } from '../../lib/sys/fault.js';

const FAULT_JS = fileURLToPath(new URL('../../lib/sys/fault.js', import.meta.url));

test('inert unless NETPLUMB_FAULT names the point', () => {
  for (const want of [undefined, '', 'veth', 'kill:veth', 'kill:', 'bridge ', 'BRIDGE']) faultPoint('bridge', want);
});

test('<point> throws an InjectedFault naming the point', async () => {
  await assertRejects(
    () => faultPoint('bridge', 'bridge'),
    { instance: InjectedFault, code: 'ERR_FAULT_INJECTED', message: /fault injected after step "bridge"/ },
    'no throw',
  );
});

function child(env: string | undefined): { status: number | null; signal: NodeJS.Signals | null; stdout: string } {
  const code = `const { faultPoint } = await import(${JSON.stringify(FAULT_JS)}); faultPoint('p'); process.stdout.write('went on');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { PATH: process.env.PATH, ...(env === undefined ? {} : { NETPLUMB_FAULT: env }) },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout };
}

test('kill:<point> kills the process with SIGKILL right there; the environment is what arms it', () => {
  assert.equal(child('kill:p'), { status: null, signal: 'SIGKILL', stdout: '' });
  assert.equal(child('kill:q'), { status: 0, signal: null, stdout: 'went on' });
  assert.equal(child(undefined), { status: 0, signal: null, stdout: 'went on' });
});

test.run();
