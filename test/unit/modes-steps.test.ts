/**
 * lib/modes/steps.ts and lib/cni/chain.ts without privilege: a Teardown runs every step and reports every
 * failure; runSteps unwinds on failure and fails at a named fault point; chainResult appends and shifts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertRejects } from '../fixtures/assert.js';
import { chainResult } from '../../lib/cni/chain.js';
import { CniError } from '../../lib/cni/errors.js';
import { runSteps, Teardown } from '../../lib/modes/steps.js';

const quiet = async <T>(fn: () => Promise<T>): Promise<T> => {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    process.stderr.write = write;
  }
};

test('Teardown: every step runs; the first failure is thrown with the others in its details', async () => {
  const ran: string[] = [];
  const t = new Teardown('test: DEL', { env: {} }, 'del-');
  await quiet(async () => {
    await t.step('a', () => ran.push('a'));
    await t.step('b', () => Promise.reject(new CniError(5, 'b broke')));
    await t.step('c', () => ran.push('c'));
    await t.step('d', () => {
      throw new Error('d broke');
    });
  });
  assert.equal(ran, ['a', 'c']);
  {
    const e = await assertRejects(() => t.finish(), { instance: CniError, cniCode: 5 }, 'finish() throws');
    assert.is((e as CniError).message, 'b broke');
    assert.match(String((e as CniError).details), /d broke/);
  }
});

test('Teardown: one failure is thrown as it is; none, nothing', async () => {
  const one = new Teardown('test: GC', { env: {} }, 'gc-');
  const err = new Error('only');
  await quiet(() => one.step('x', () => Promise.reject(err)));
  assert.throws(
    () => one.finish(),
    (e: unknown) => e === err,
  );
  const none = new Teardown('test: GC', { env: {} }, 'gc-');
  await none.step('x', () => undefined);
  none.finish();
});

test('Teardown: the fault point after a step is del-<name>', async () => {
  const t = new Teardown('test: DEL', { env: { NETPLUMB_FAULT: 'del-b' } }, 'del-');
  const ran: string[] = [];
  await t.step('a', () => ran.push('a'));
  await assertRejects(() => t.step('b', () => ran.push('b')), { message: /fault injected after step "del-b"/ }, 'the fault point throws');
  assert.equal(ran, ['a', 'b'], 'the step ran before its fault point');
});

test('runSteps: a fault point after a step unwinds the undos of the steps before it, in reverse', async () => {
  const log: string[] = [];
  try {
    await runSteps({ env: { NETPLUMB_FAULT: 'two' } }, async (step, undo) => {
      await step('one', () => undo.push('undo one', () => log.push('undo one')));
      await step('two', () => undo.push('undo two', () => log.push('undo two')));
      await step('three', () => log.push('three'));
    });
    assert.unreachable('the fault point throws');
  } catch (e) {
    assert.match((e as Error).message, /fault injected after step "two"/);
  }
  assert.equal(log, ['undo two', 'undo one']);
  assert.is(await runSteps({ env: {} }, async (step) => step('only', () => 7)), 7);
});

test("chainResult: our interfaces after prevResult's, our ips[].interface shifted, our DNS if any", () => {
  const prev = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'br0' }, { name: 'eth0', sandbox: '/run/netns/c' }],
    ips: [{ address: '10.0.0.2/24', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    dns: { nameservers: ['10.0.0.53'] },
  };
  const ours = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'lo', sandbox: '/run/netns/c' }],
    ips: [{ address: '127.0.0.1/8', interface: 0 }, { address: '::1/128' }],
  };
  const r = chainResult(prev, ours);
  assert.equal(
    r.interfaces?.map((i) => i.name),
    ['br0', 'eth0', 'lo'],
  );
  assert.equal(r.ips, [{ address: '10.0.0.2/24', interface: 1 }, { address: '127.0.0.1/8', interface: 2 }, { address: '::1/128' }]);
  assert.equal(r.routes, prev.routes);
  assert.equal(r.dns, prev.dns);
  assert.equal(chainResult({ ...prev }, { ...ours, dns: { nameservers: ['1.1.1.1'] } }).dns, { nameservers: ['1.1.1.1'] });
  assert.is(chainResult(undefined, ours), ours);
});

test.run();
