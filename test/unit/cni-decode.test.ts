/**
 * Decoding a network configuration as the reference's Go plugins do (encoding/json): keys matched to
 * declared fields case-insensitively with an exact match first, values checked against the field's type,
 * unknown keys kept. In process, through parseRequest and each plugin's own parser.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeFields, foldKey, type FieldTable } from '../../lib/cni/decode.js';
import { CniError } from '../../lib/cni/errors.js';
import { HOST_LOCAL_FIELDS, storeRef } from '../../lib/modes/host-local.js';
import { parseRequest } from '../../lib/cni/request.js';
import { handle, type CniPlugin } from '../../lib/cni/skeleton.js';
import { parseIpamConfig } from '../../lib/ipam/config.js';
import { formatIp } from '../../lib/addr/ip.js';
import { BRIDGE_FIELDS, parseBridgeConf } from '../../lib/modes/bridge-config.js';
import { containerPlugin, targetOf } from '../../lib/modes/container.js';

const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
const req = (conf: object, fields?: FieldTable, env: Record<string, string> = ENV) =>
  parseRequest(env, Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'net1', ...conf })), undefined, fields);

function refusal(f: () => unknown): CniError {
  try {
    f();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('was not refused');
}

test('Go folding: ASCII case, and the Kelvin sign and long s that fold to k and s', () => {
  assert.is(foldKey('HostPort'), 'hostport');
  assert.is(foldKey('\u212aey'), 'key');
  assert.is(foldKey('\u017fubnet'), 'subnet');
  const t: FieldTable = { hostPort: 'integer', subnet: 'string' };
  assert.equal(decodeFields({ HOSTPORT: 80, '\u017fubnet': '10.0.0.0/8' }, t), { hostPort: 80, subnet: '10.0.0.0/8' });
});

test('an exact key wins over folded ones in any order; among folded keys the last wins; unknown keys stay', () => {
  const t: FieldTable = { hostPort: 'integer' };
  assert.equal(decodeFields({ hostPort: 1, HostPort: 2 }, t), { hostPort: 1 });
  assert.equal(decodeFields({ HostPort: 2, hostPort: 1 }, t), { hostPort: 1 });
  assert.equal(decodeFields({ HostPort: 2, HOSTPORT: 3 }, t), { hostPort: 3 });
  assert.equal(decodeFields({ HostPort: 2, Extra: { A: 1 }, 'cni.dev/x': true }, t), { hostPort: 2, Extra: { A: 1 }, 'cni.dev/x': true });
});

test('types: every declared field is checked (null is "not set", as in Go), nested fields are named in the message', () => {
  const t: FieldTable = { list: { list: { fields: { port: 'integer' } } }, on: 'boolean', m: { map: 'boolean' } };
  assert.equal(decodeFields({ list: null, on: null }, t), { list: null, on: null });
  let e = refusal(() => decodeFields({ List: [{ Port: 'x' }] }, t, 'runtimeConfig'));
  assert.is(e.cniCode, 7);
  assert.match(e.message, /^"runtimeConfig\.list\[0\]\.port" must be an integer, not "x"/);
  e = refusal(() => decodeFields({ on: 'yes' }, t));
  assert.match(e.message, /^"on" must be true or false, not "yes"/);
  e = refusal(() => decodeFields({ m: { a: 1 } }, t));
  assert.match(e.message, /^"m\.a" must be true or false/);
  assert.is(refusal(() => decodeFields({ list: {} }, t)).cniCode, 7);
  assert.is(refusal(() => decodeFields({ on: 1.5 }, { on: 'integer' })).cniCode, 7);
});

test("the spec's fields are checked for every plugin, used or not: type, capabilities, ipam.type, dns, runtimeConfig, args, prevResult", async () => {
  const cases: Array<[object, RegExp]> = [
    [{ type: 5 }, /^"type" must be a string/],
    [{ type: 'x', capabilities: { portMappings: 'yes' } }, /^"capabilities\.portMappings" must be true or false/],
    [{ type: 'x', ipam: { type: ['host-local'] } }, /^"ipam\.type" must be a string/],
    [{ type: 'x', dns: { nameservers: '1.1.1.1' } }, /^"dns\.nameservers" must be a list/],
    [{ type: 'x', runtimeConfig: [] }, /^"runtimeConfig" must be an object/],
    [{ type: 'x', args: 'a=b' }, /^"args" must be an object/],
    [{ type: 'x', prevResult: { ips: [{ address: 5 }] } }, /^"prevResult\.ips\[0\]\.address" must be a string/],
  ];
  const reached: string[] = [];
  const plugin: CniPlugin = {
    name: 'any',
    add: async () => (reached.push('ADD'), { cniVersion: '1.1.0' }),
    del: async () => void reached.push('DEL'),
    check: async () => void reached.push('CHECK'),
  };
  for (const [conf, re] of cases) {
    const o = await handle(plugin, ENV, { readStdin: async () => Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', ...conf })) });
    assert.is(o.exitCode, 1, JSON.stringify(conf));
    const json = JSON.parse(o.stdout);
    assert.is(json.code, 7, o.stdout);
    assert.match(json.msg, re);
  }
  assert.equal(reached, [], 'no plugin code ran');
});

test('keys of the network configuration itself fold too (Go NetConf: Name, Type, CNIVersion, IPAM, DNS)', () => {
  const r = parseRequest(
    ENV,
    Buffer.from(
      JSON.stringify({ CNIVersion: '0.4.0', Name: 'net1', Type: 'netplumb-bridge', IPAM: { Type: 'host-local' }, DNS: { Nameservers: ['10.0.0.1'] } }),
    ),
  );
  assert.is(r.cniVersion, '0.4.0');
  assert.is(r.name, 'net1');
  assert.equal(r.config.ipam, { type: 'host-local' });
  assert.equal(r.config.dns, { nameservers: ['10.0.0.1'] });
  const gc = parseRequest(
    { ...ENV, CNI_COMMAND: 'GC' },
    Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'n', 'CNI.dev/Valid-Attachments': [{ ContainerID: 'a', IfName: 'eth0' }] })),
  );
  assert.equal(gc.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
});

test("bridge: Go-named portMappings (containerd CRI), mac, args.cni.mac and the bridge's own keys", () => {
  const c = parseBridgeConf(
    req(
      {
        type: 'netplumb-bridge',
        Bridge: 'br7',
        IsGateway: true,
        IPMasq: true,
        MTU: 1400,
        RuntimeConfig: { PortMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: 'TCP', HostIP: '' }], MAC: '02:00:00:00:00:07' },
      },
      BRIDGE_FIELDS,
    ),
  );
  assert.equal(c.portMappings, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  assert.is(c.bridge, 'br7');
  assert.is(c.isGateway, true);
  assert.is(c.ipMasq, true);
  assert.is(c.mtu, 1400);
  assert.is(c.mac, '02:00:00:00:00:07');
  assert.is(parseBridgeConf(req({ type: 'netplumb-bridge', Args: { CNI: { MAC: '02:00:00:00:00:08' } } }, BRIDGE_FIELDS)).mac, '02:00:00:00:00:08');
  const e = refusal(() => req({ type: 'netplumb-bridge', runtimeConfig: { portMappings: [{ HostPort: '8080', ContainerPort: 80 }] } }, BRIDGE_FIELDS));
  assert.match(e.message, /^"runtimeConfig\.portMappings\[0\]\.hostPort" must be an integer, not "8080"/);
  assert.is(refusal(() => req({ type: 'netplumb-bridge', IPMasq: 'yes' }, BRIDGE_FIELDS)).object, 'ipMasq');
});

test('host-local: Go-named ipam keys, ranges, routes, runtimeConfig.ips/ipRanges and args.cni.ips', () => {
  const r = req(
    {
      type: 'netplumb-bridge',
      IPAM: {
        Type: 'netplumb-host-local',
        DataDir: '/tmp/np-decode-store',
        Ranges: [[{ Subnet: '10.9.0.0/24', RangeStart: '10.9.0.10', Gateway: '10.9.0.1' }]],
        Routes: [{ Dst: '0.0.0.0/0', GW: '10.9.0.1' }],
      },
      RuntimeConfig: { IPRanges: [[{ Subnet: '10.8.0.0/24' }]], IPs: ['10.8.0.5'] },
      Args: { CNI: { IPs: ['10.9.0.20'] } },
    },
    HOST_LOCAL_FIELDS,
  );
  const conf = parseIpamConfig(r.config);
  assert.is(conf.dataDir, '/tmp/np-decode-store');
  assert.is(conf.type, 'netplumb-host-local');
  assert.is(conf.rangeSets.length, 2);
  assert.is(conf.rangeSets[1]![0]!.rangeStart, conf.rangeSets[1]![0]!.subnet.network + 10n);
  assert.equal(conf.routes, [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }]);
  assert.equal(conf.requestedIps.map(formatIp).sort(), ['10.8.0.5', '10.9.0.20']);
  // a plugin that did not declare host-local's fields still finds the store (the bridge's GC)
  assert.equal(storeRef(req({ type: 'netplumb-bridge', ipam: { Type: 'netplumb-host-local', DATADIR: '/tmp/np-decode-store' } })), {
    dataDir: '/tmp/np-decode-store',
    name: 'net1',
  });
});

test('container: the target under a folded key', () => {
  const t = targetOf(req({ type: 'netplumb-container', Container: 'abc' }, containerPlugin.fields));
  assert.equal(t, { kind: 'container', id: 'abc' });
});

test.run();
