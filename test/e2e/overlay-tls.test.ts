/**
 * The VXLAN overlay with etcd over TLS: a throwaway CA (openssl), the real etcd with `--cert-file --key-file
 * --trusted-ca-file --client-cert-auth` on https only, two hosts whose configurations name the CA and a client
 * certificate. Shown: the overlay works over TLS (leases, tables, ping across hosts); a client without a
 * certificate, with one of another CA, or trusting another CA is refused, with an error naming etcd and TLS
 * (and etcd's own log saying why it rejected the connection); a wrong TLS file is a configuration error
 * naming the file, before anything is touched. Oracles: `ip -j`, `bridge -j fdb`, ping, etcd's log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { overlayLab, ping, sandboxed, startAgentProcess, waitFor, type OverlayLab, type OverlayLabHost } from '../../netns-harness/index.js';
import { readEtcdTls, type EtcdTlsFiles } from '../../lib/agent/overlay/etcd-tls.js';
import { addOverlayContainer, assertProgrammed } from '../fixtures/overlay.js';

await sandboxed();

const DEVICE = 'np-vx1';
let lab: OverlayLab;
/** the two hosts of the overlay */
let pair: OverlayLabHost[];
/** a third host, for configurations that must fail */
let spare: OverlayLabHost;

test.before(async () => {
  lab = await overlayLab({ hosts: 2, tls: true });
  pair = [...lab.hosts];
  for (const h of pair) await lab.startAgent(h);
  spare = await lab.addHost();
});

test.after(async () => {
  await lab?.destroy();
});

/**
 * netplumbd with the overlay configuration of `spare` changed by `etcd` (keys set to undefined are dropped);
 * resolves the first overlay event that is not a success, and stops the agent.
 */
async function refusal(etcd: Partial<EtcdTlsFiles>, label: string): Promise<Record<string, any>> {
  const cfg = JSON.parse(readFileSync(spare.configPath, 'utf8'));
  const configPath = join(lab.dir, `spare-${label}.json`);
  writeFileSync(configPath, JSON.stringify({ ...cfg, etcd: { ...cfg.etcd, ...etcd } }));
  const agent = await startAgentProcess({ socket: join(lab.dir, `spare-${label}.sock`), netns: spare.host.netnsPath, args: ['--overlay', configPath] });
  try {
    const failed = (e: Record<string, any>) => e.event === 'overlay-config-invalid' || e.event === 'overlay-start-failed';
    const ev = await waitFor(() => agent.events().find((e) => failed(e) || e.event === 'overlay-leased'), { timeoutMs: 20_000 });
    assert.ok(ev, `${label}: the agent reported nothing:\n${agent.log()}`);
    assert.ok(failed(ev), `${label}: ${JSON.stringify(ev)}`);
    return ev;
  } finally {
    await agent.stop();
  }
}

test('over TLS with client certificates: the hosts lease subnets, program each other, containers ping across', async () => {
  const [h1, h2] = pair as [OverlayLabHost, OverlayLabHost];
  for (const h of pair) {
    assert.match(lab.state(h).store, /^https:\/\//);
    await assertProgrammed(
      lab,
      h,
      pair.filter((o) => o !== h),
      DEVICE,
    );
  }
  assert.is.not(lab.state(h1).subnet, lab.state(h2).subnet);
  const a = await addOverlayContainer(lab, h1, 'tls-a');
  const b = await addOverlayContainer(lab, h2, 'tls-b');
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    const p = await ping(from.ctr, to.ip, { count: 1, timeoutSec: 3 });
    assert.ok(p.ok, `ping ${from.ctr.name} → ${to.ip}: ${p.output}`);
  }
});

test('a wrong CA path is a configuration error naming the key and the file; the host is left untouched', async () => {
  const ev = await refusal({ caFile: '/nonexistent/ca.pem' }, 'no-ca');
  assert.is(ev.event, 'overlay-config-invalid', JSON.stringify(ev));
  assert.match(ev.message, 'etcd.caFile /nonexistent/ca.pem');
  assert.match(ev.message, /ENOENT/);
  assert.equal(await spare.host.ip<any[]>('link', 'show', 'type', 'vxlan'), [], 'no VXLAN device was made');
  assert.not.ok(existsSync(spare.stateDir), 'no state was written');
});

test('TLS files that are wrong in content are refused, naming the file: not PEM, a directory, a key of another certificate', () => {
  const pki = lab.pki!;
  const junk = join(lab.dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate\n');
  const dir = join(lab.dir, 'a-dir');
  mkdirSync(dir, { recursive: true });
  const cases: [EtcdTlsFiles, string, RegExp][] = [
    [{ caFile: junk }, 'etcd.caFile', /junk\.pem holds no PEM certificate/],
    [{ caFile: dir }, 'etcd.caFile', /a-dir is not a regular file/],
    [{ caFile: pki.caFile, certFile: junk, keyFile: pki.client.keyFile }, 'etcd.certFile', /junk\.pem holds no PEM certificate/],
    [{ caFile: pki.caFile, certFile: pki.client.certFile, keyFile: junk }, 'etcd.keyFile', /junk\.pem is not an unencrypted PEM private key/],
    [
      { caFile: pki.caFile, certFile: pki.client.certFile, keyFile: pki.server.keyFile },
      'etcd.keyFile',
      /server-key\.pem is not the key of the certificate in .*client\.pem/,
    ],
  ];
  for (const [files, key, why] of cases) {
    try {
      readEtcdTls(files);
      assert.unreachable(`accepted ${JSON.stringify(files)}`);
    } catch (e) {
      assert.equal([(e as { code?: string }).code, (e as { object?: string }).object], ['ERR_INVALID_ARG_VALUE', key], (e as Error).message);
      assert.match((e as Error).message, why);
    }
  }
  const good = readEtcdTls({ caFile: pki.caFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile })!;
  assert.ok(good.ca && good.cert && good.key);
  assert.is(readEtcdTls({}), undefined);
});

test('etcd refuses a client without a certificate, or with one of another CA; a client trusting another CA refuses etcd', async () => {
  const pki = lab.pki!;
  const clientRefused = /etcd refused the client certificate/;
  const serverUntrusted = /etcd's server certificate is not trusted \(is etcd\.caFile/;
  const cases: [string, Partial<EtcdTlsFiles>, RegExp, RegExp][] = [
    ['no-cert', { certFile: undefined, keyFile: undefined }, clientRefused, /client didn't provide a certificate/],
    ['other-ca-cert', { certFile: pki.otherClient.certFile, keyFile: pki.otherClient.keyFile }, clientRefused, /certificate signed by unknown authority/],
    // the client hangs up on a server it does not trust: etcd sees only the end of the handshake
    ['other-ca-trusted', { caFile: pki.otherCaFile }, serverUntrusted, /"rejected connection"/],
  ];
  for (const [label, etcd, clientSays, serverSays] of cases) {
    const before = lab.etcd.log().length;
    const ev = await refusal(etcd, label);
    assert.is(ev.event, 'overlay-start-failed', `${label}: ${JSON.stringify(ev)}`);
    assert.match(ev.message, /etcd https:\/\/192\.0\.2\.254:2379: TLS handshake failed/, `${label}: ${ev.message}`);
    assert.match(ev.message, clientSays, `${label}: ${ev.message}`);
    // etcd's side of the story, from its own log
    const said = await waitFor(() => serverSays.test(lab.etcd.log().slice(before)), { timeoutMs: 5000 });
    assert.ok(said, `${label}: etcd's log says ${serverSays}:\n${lab.etcd.log().slice(before)}`);
  }
  assert.not.ok(existsSync(join(spare.stateDir, `${lab.name}.json`)), 'the refused host leased nothing');
  for (const h of pair) {
    await assertProgrammed(
      lab,
      h,
      pair.filter((o) => o !== h),
      DEVICE,
    );
  }
});

test.run();
