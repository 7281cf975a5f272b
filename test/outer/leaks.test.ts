/**
 * Runs outside any sandbox and looks at the machine's own namespace: whatever a sandboxed program does,
 * and however it dies, the machine must afterwards have the same links, addresses, routes, rules, nftables
 * ruleset, /var/run/netns entries, mounts, and no process of that run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { diffSnapshots, spawnSandboxed, takeSnapshot, taggedProcesses, waitFor, RUN_ID_ENV } from '../../netns-harness/index.js';

const BUSY = fileURLToPath(new URL('../fixtures/busy-lab.js', import.meta.url));
const HARNESS_TEST = fileURLToPath(new URL('../integration/harness.test.js', import.meta.url));

async function gone(id: string): Promise<string[]> {
  let left: string[] = [];
  await waitFor(() => (left = taggedProcesses(id)).length === 0);
  return left;
}

function waitForOutput(child: ReturnType<typeof spawn>, text: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${ms} ms: ${seen}`)), ms);
    const on = (d: Buffer) => {
      seen += d;
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', (d) => (seen += d));
    child.once('exit', (c) => {
      clearTimeout(timer);
      reject(new Error(`exited ${c} before "${text}": ${seen}`));
    });
  });
}

/** Resolves when the child has exited; fails (after killing its process group) if it does not within `ms`. */
async function exited(child: ReturnType<typeof spawn>, ms = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<boolean>((r) => child.once('exit', () => r(true)));
  if (await Promise.race([done, sleep(ms).then(() => false)])) return;
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
  await done;
  assert.unreachable(`process ${child.pid} did not exit within ${ms} ms`);
}

type Start = (id: string) => ReturnType<typeof spawn>;
type Kill = (child: ReturnType<typeof spawn>, id: string) => void;

// The launcher of spawnSandboxed() is unshare(1), which ignores SIGINT/SIGTERM by design; a program that
// calls sandboxed() itself handles them.
const viaLauncher: Start = (id) => spawnSandboxed([process.execPath, BUSY], { stdio: 'pipe', env: { [RUN_ID_ENV]: id } });
const selfSandboxed: Start = (id) =>
  spawn(process.execPath, [BUSY], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, [RUN_ID_ENV]: id } });

const scenarios: [string, Start, Kill][] = [
  ['SIGKILL of the launcher', viaLauncher, (c) => c.kill('SIGKILL')],
  ['SIGTERM of a self-sandboxed program', selfSandboxed, (c) => c.kill('SIGTERM')],
  ['SIGINT (Ctrl-C) to the process group', selfSandboxed, (c) => process.kill(-c.pid!, 'SIGINT')],
  [
    'SIGKILL of the sandbox PID 1',
    viaLauncher,
    (_, id) => {
      const inner = taggedProcesses(id).find((p) => / [^ ]*node [^ ]*busy-lab\.js$/.test(p));
      assert.ok(inner, 'found the sandboxed node process');
      process.kill(Number(inner!.split(' ')[0]), 'SIGKILL');
    },
  ],
];

for (const [what, start, kill] of scenarios) {
  test(`a busy lab killed by ${what} leaves the machine as it was`, async () => {
    const before = await takeSnapshot();
    const id = `np-leak-${randomBytes(4).toString('hex')}`;
    const child = start(id);
    await waitForOutput(child, 'ready', 30_000);
    assert.ok(taggedProcesses(id).length >= 5, 'the lab is running: holders, servers, sandbox');
    kill(child, id);
    await exited(child);
    assert.equal(await gone(id), [], 'no process of the run survives');
    assert.equal(diffSnapshots(before, await takeSnapshot()), []);
  });
}

test('a test file killed with SIGKILL mid-way leaves the machine as it was', async () => {
  const before = await takeSnapshot();
  for (const delay of [150, 400, 900, 1600]) {
    const id = `np-midway-${randomBytes(4).toString('hex')}`;
    const child = spawn(process.execPath, [HARNESS_TEST], { stdio: 'ignore', env: { ...process.env, [RUN_ID_ENV]: id } });
    await sleep(delay);
    child.kill('SIGKILL');
    await exited(child);
    assert.equal(await gone(id), [], `nothing survives a kill after ${delay} ms`);
  }
  assert.equal(diffSnapshots(before, await takeSnapshot()), []);
});

test.run();
