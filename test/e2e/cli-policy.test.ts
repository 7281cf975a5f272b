/**
 * `netplumb policy` and `connect --link` on an `--icc=false` network, run as a user runs them (node
 * dist/bin/netplumb.js, without the agent) inside a harness host: packets prove what an allow rule opens and
 * what it does not (bad rules are the hostile corpus's, test/hardening/input-corpus.test.ts); disconnecting
 * an endpoint takes its rules and set elements with it (the rule list and `nft -j` as oracles).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, startEchoServer, tcpSend, type Container, type Host, type RunResult } from '../../netns-harness/index.js';
import { ensurePluginBins } from '../fixtures/cni-runtime.js';
import { nftTable } from '../fixtures/bridge-lab.js';

await sandboxed();
ensurePluginBins();

const NETPLUMB = fileURLToPath(new URL('../../bin/netplumb.js', import.meta.url));
let host: Host;
let root: string;

const cli = (args: string[]): Promise<RunResult> =>
  host.exec([process.execPath, NETPLUMB, ...args], { env: { NETPLUMB_STATE_DIR: root, NETPLUMB_NO_AGENT: '1' }, check: false, timeoutMs: 60_000 });
async function ok(args: string[]): Promise<RunResult> {
  const r = await cli(args);
  assert.is(r.exitCode, 0, `netplumb ${args.join(' ')}: ${r.stderr}`);
  return r;
}
const json = async (args: string[]) => JSON.parse((await ok([...args, '--json'])).stdout);
const opens = async (from: Container, to: string, port: number) => (await tcpSend(from, to, port, 'hi', 1000)).reply === 'hi';
const allowElements = async () =>
  (await nftTable('inet', host.netnsPath)).filter((o) => o.set?.name === 'allow4').flatMap((o) => (o.set.elem ?? []).map((e: any) => JSON.stringify(e)));

test.before(async () => {
  host = await createHost('polhost');
  root = mkdtempSync(join(tmpdir(), 'netplumb-policy-'));
});
test.after(async () => {
  await host.destroy();
  rmSync(root, { recursive: true, force: true });
});

test('policy allow opens one port one way; connect --link; disconnect takes the rules', async () => {
  await ok(['network', 'create', 'pol', '--subnet', '10.93.0.0/24', '--icc=false']);
  const [a, b, c] = [await host.createContainer('a'), await host.createContainer('b'), await host.createContainer('c')];
  await ok(['connect', 'pol', a.netnsPath, '--name', 'web']);
  const eb = await json(['connect', 'pol', b.netnsPath, '--name', 'db']);
  const bAddr = eb.addresses[0].split('/')[0];
  const aAddr = (await json(['network', 'inspect', 'pol']))[0].containers;
  const aIp = (Object.values(aAddr) as any[]).find((x) => x.name === 'web').ipv4Address.split('/')[0];
  const servers = [await startEchoServer(b, 80), await startEchoServer(b, 81), await startEchoServer(a, 80)];
  try {
    assert.not.ok(await opens(a, bAddr, 80), 'icc=false: nothing between endpoints');
    const id = (await ok(['policy', 'allow', 'pol', '--from', 'web', '--to', 'db', '--port', '80/tcp'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{12}$/);
    assert.ok(await opens(a, bAddr, 80), 'web reaches db:80, replies flow');
    assert.not.ok(await opens(a, bAddr, 81), 'not db:81');
    assert.not.ok(await opens(b, aIp, 80), 'db cannot open to web');
    const ls = await json(['policy', 'ls', 'pol']);
    assert.equal(
      ls.map((r: any) => [r.id, r.fromNames, r.toName, r.ports]),
      [[id, ['web'], 'db', [{ protocol: 'tcp', port: 80 }]]],
    );

    // Refused rules (unknown endpoints, overlaps, ports out of range, too many) are the hostile corpus's
    // (test/hardening/input-corpus.test.ts, "policy").

    // Docker's link: c may reach db's 81.
    await ok(['connect', 'pol', c.netnsPath, '--name', 'app', '--link', 'db:81/tcp']);
    assert.ok(await opens(c, bAddr, 81), 'app reaches db:81 through its link');
    assert.not.ok(await opens(c, bAddr, 80), 'but not db:80');
    assert.is((await json(['policy', 'ls', 'pol'])).length, 2);
  } finally {
    for (const s of servers) await s.stop();
  }

  await ok(['disconnect', 'pol', 'db']);
  assert.equal(await json(['policy', 'ls', 'pol']), [], 'every rule named db');
  assert.equal(
    (await allowElements()).filter((e) => e.includes(`"${bAddr}"`)),
    [],
    'no element names db',
  );
  const gone = await cli(['policy', 'rm', 'pol', 'ffffffffffff']);
  assert.is(gone.exitCode, 3);
  await ok(['disconnect', 'pol', 'web']);
  await ok(['disconnect', 'pol', 'app']);
  await ok(['network', 'rm', 'pol']);
});

test.run();
