/**
 * The --net=none walkthrough on Docker 20.10 (Debian's docker.io, /usr/bin/docker): dockerd runs in a harness
 * host's network namespace with its data, exec root and socket under the sandbox's private /run, so docker0
 * (172.17.0.1/16) exists only there. A `docker run --net=none` container gets eth0 on Docker's own docker0 by
 * the walkthrough, from the top of the subnet; it reaches docker0 and a normal Docker container; a second
 * run changes nothing. Skipped when docker.io is not installed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxed, createHost, ipJson, run, type Host } from '../../netns-harness/index.js';
import { busyboxRootfs, rootfsTar, skipUnlessInstalled, startDaemon, tcpFetch, waitForSocket, type Daemon } from '../fixtures/runtimes.js';

// The machine may have a newer docker client in /usr/local/bin that does not speak to Debian's daemon.
const DOCKER = '/usr/bin/docker';
skipUnlessInstalled([DOCKER, '/usr/sbin/dockerd', '/bin/busybox'], 'docker.io busybox-static');

await sandboxed();

const WALKTHROUGH = fileURLToPath(new URL('../../examples/net-none-walkthrough.js', import.meta.url));
const IMAGE = 'netplumb.test/busybox:docker';
const tmp = mkdtempSync('/run/np-docker-');
const sock = join(tmp, 'docker.sock');
let host: Host;
let dockerd: Daemon;

const docker = (...args: string[]) => run([DOCKER, '-H', `unix://${sock}`, ...args], { netns: host.netnsPath, timeoutMs: 120_000 });

test.before(async () => {
  host = await createHost('node');
  writeFileSync(join(tmp, 'daemon.json'), '{}');
  dockerd = startDaemon(
    host,
    [
      'dockerd',
      '--config-file',
      join(tmp, 'daemon.json'),
      '--data-root',
      join(tmp, 'data'),
      '--exec-root',
      join(tmp, 'exec'),
      '--pidfile',
      join(tmp, 'docker.pid'),
      '-H',
      `unix://${sock}`,
      '--storage-driver',
      'vfs',
    ],
    join(tmp, 'dockerd.log'),
  );
  await waitForSocket(sock, dockerd);
  const rootfs = busyboxRootfs(join(tmp, 'rootfs'));
  await docker('import', await rootfsTar(rootfs, join(tmp, 'rootfs.tar')), IMAGE);
});

test.after(async () => {
  if (host) {
    await run([DOCKER, '-H', `unix://${sock}`, 'rm', '-f', 'normal', 'lonely'], { netns: host.netnsPath, check: false });
    await dockerd?.stop(20_000);
    await host.destroy();
  }
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* a mount left by a failure: /run is the sandbox's own tmpfs */
  }
});

test("docker run --net=none, then the walkthrough on its PID against Docker's docker0", async () => {
  const [br] = await host.ip<any[]>('addr', 'show', 'dev', 'docker0');
  assert.equal(
    br.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`),
    ['172.17.0.1/16'],
    "today's docker0",
  );
  await docker('run', '-d', '--name', 'normal', '--hostname', 'normal', IMAGE, 'nc', '-ll', '-p', '80', '-e', 'hostname');
  const normalIp = (await docker('inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'normal')).stdout.trim();
  assert.match(normalIp, /^172\.17\.0\.\d+$/, 'Docker hands out from the bottom');
  await docker('run', '-d', '--net=none', '--name', 'lonely', IMAGE, 'sleep', '600');
  const pid = (await docker('inspect', '-f', '{{.State.Pid}}', 'lonely')).stdout.trim();
  const ns = `/proc/${pid}/ns/net`;
  assert.equal(
    (await ipJson<any[]>(['link', 'show'], ns)).map((l) => l.ifname),
    ['lo'],
    '--net=none: only lo',
  );

  const walk = () => host.exec([process.execPath, WALKTHROUGH, '--pid', pid], { check: false, timeoutMs: 60_000 });
  const r = await walk();
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /docker0 has 172\.17\.0\.1\/16: eth0 gets 172\.17\.255\.254\/16 from the top of the subnet/);
  assert.ok(r.stdout.includes(`ip netns exec ${pid} ip route add default via 172.17.0.1`), r.stdout);
  const [eth0] = await ipJson<any[]>(['addr', 'show', 'dev', 'eth0'], ns);
  assert.equal(
    eth0.addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`),
    ['172.17.255.254/16'],
  );
  const ping = await run(['ping', '-c', '1', '-W', '2', '172.17.0.1'], { netns: ns, check: false });
  assert.is(ping.exitCode, 0, `reaches docker0: ${ping.stdout}${ping.stderr}`);
  assert.is(await tcpFetch(ns, normalIp, 80), 'normal', 'reaches a normal Docker container');

  const before = JSON.stringify([await ipJson(['-4', 'addr', 'show'], ns), await ipJson(['-4', 'route', 'show'], ns), await host.ip('-4', 'addr', 'show')]);
  const again = await walk();
  assert.is(again.exitCode, 0, again.stdout + again.stderr);
  assert.match(again.stdout, new RegExp(`${pid} is already done`));
  const after = JSON.stringify([await ipJson(['-4', 'addr', 'show'], ns), await ipJson(['-4', 'route', 'show'], ns), await host.ip('-4', 'addr', 'show')]);
  assert.is(after, before, 'a second run changes nothing');
});

test.run();
