/**
 * The runtime harness against the reference plugins (Debian containernetworking-plugins): the baseline
 * every netplumb plugin is compared with. bridge + host-local + portmap in one conflist, inside a harness
 * host: two containers ping each other, a published port answers, DEL leaves nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { sandboxed, createHost, ping, startEchoServer, tcpSend, type NetworkConfigList } from '../../netns-harness/index.js';
import { cniRuntime, REFERENCE_BIN } from '../fixtures/cni-runtime.js';

await sandboxed();

const list: NetworkConfigList = {
  cniVersion: '1.0.0',
  name: 'refnet',
  plugins: [
    {
      type: 'bridge',
      bridge: 'cni-ref0',
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.66.0.0/24' }]], dataDir: '/run/cni-test/ipam', routes: [{ dst: '0.0.0.0/0' }] },
    },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};

test('reference bridge + host-local + portmap through the runtime harness', async () => {
  const host = await createHost('refhost');
  const rt = cniRuntime({ cniPath: [REFERENCE_BIN], host });
  const version = await rt.version('bridge');
  assert.ok(version.supportedVersions.includes('1.0.0'));

  const a = await host.createContainer('a');
  const b = await host.createContainer('b');
  const attA = {
    containerId: 'ctr-a',
    netns: a.netnsPath,
    ifname: 'eth0',
    capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
  };
  const attB = { containerId: 'ctr-b', netns: b.netnsPath, ifname: 'eth0' };
  const resA = await rt.add(list, attA);
  const resB = await rt.add(list, attB);
  assert.is(resA.cniVersion, '1.0.0');
  const ipA = resA.ips[0].address.split('/')[0];
  const ipB = resB.ips[0].address.split('/')[0];
  assert.is.not(ipA, ipB);
  assert.equal(
    readdirSync('/run/cni-test/ipam/refnet')
      .filter((f) => f.startsWith('10.'))
      .sort(),
    [ipA, ipB].sort(),
  );

  const p = await ping(b, ipA, { count: 2, interval: 0.2 });
  assert.ok(p.ok, p.output);
  // (the reference portmap 1.1.1 fails CHECK without IPv6 DNAT chains; CHECK the bridge alone)
  await rt.check({ ...list, plugins: list.plugins.slice(0, 1) }, attA);

  const srv = await startEchoServer(a, 80);
  const viaPort = await tcpSend(host, '10.66.0.1', 8080);
  await srv.stop();
  assert.ok(viaPort.ok, `published port: ${viaPort.error}`);

  await rt.del(list, attA);
  await rt.del(list, attB);
  await rt.del(list, attB); // DEL is idempotent
  assert.equal(
    readdirSync('/run/cni-test/ipam/refnet').filter((f) => f.startsWith('10.')),
    [],
  );
  const vethsLeft = (await host.ip<any[]>('-d', 'link', 'show', 'type', 'veth')).length;
  assert.is(vethsLeft, 0);
  await host.destroy();
});

test.run();
