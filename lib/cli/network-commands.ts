/** `netplumb network create|ls|inspect|rm`, `netplumb connect`, `netplumb disconnect`. */
import { Command, Option } from 'commander';
import type { PublishedPort } from '../networks/index.js';
import { parsePortSpec } from '../networks/policy-store.js';
import type { NetworkOps } from './network-ops.js';
import { CliError, EXIT, printJson, printTable, progress } from './output.js';

/** Parses `HOST:CONTAINER[/tcp|udp]` or `IP:HOST:CONTAINER[/proto]` (Docker's --publish). */
export function parsePublish(s: string): PublishedPort {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(s);
  const port = (p: string | undefined) => (p !== undefined && Number(p) >= 1 && Number(p) <= 65535 ? Number(p) : undefined);
  const hostPort = port(m?.[2]);
  const containerPort = port(m?.[3]);
  if (!m || hostPort === undefined || containerPort === undefined) {
    throw new CliError(`--publish ${JSON.stringify(s)}: write HOST_PORT:CONTAINER_PORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp`, EXIT.USAGE);
  }
  return { hostPort, containerPort, protocol: (m[4] ?? 'tcp') as 'tcp' | 'udp', ...(m[1] ? { hostIP: m[1].replace(/^\[|\]$/g, '') } : {}) };
}

const collect = (v: string, prev: string[]) => [...prev, v];

function parseIcc(v: string): boolean {
  if (v !== 'true' && v !== 'false') throw new CliError(`--icc ${JSON.stringify(v)}: write --icc=true or --icc=false`, EXIT.USAGE);
  return v === 'true';
}

/** Parses `--link ENDPOINT:PORT[/tcp|udp|sctp]`. */
function parseLink(s: string): { to: string; port: ReturnType<typeof parsePortSpec> } {
  const i = s.lastIndexOf(':');
  if (i <= 0) throw new CliError(`--link ${JSON.stringify(s)}: write ENDPOINT:PORT[/tcp|udp|sctp], e.g. db:5432/tcp`, EXIT.USAGE);
  try {
    return { to: s.slice(0, i), port: parsePortSpec(s.slice(i + 1)) };
  } catch (e) {
    throw new CliError(`--link ${JSON.stringify(s)}: ${(e as Error).message}`, EXIT.USAGE);
  }
}

/** netplumbd's or the in-process verbs, loaded when a command runs (lib/networks is most of a start's cost). */
const loadOps = async (): Promise<NetworkOps> => (await import('./network-ops.js')).networkOps();

/** Adds the network commands to `program`; `ops` is called once per command (agent or in process). */
export function addNetworkCommands(program: Command, ops: () => Promise<NetworkOps> = loadOps): void {
  const network = program.command('network').description('define networks (a bridge, a subnet and its IPAM) and list, inspect or remove them');

  network
    .command('create')
    .description('define a network; its bridge is made when the first target connects')
    .argument('<name>', 'network name: letters, digits, _ . -')
    .option('--subnet <cidr>', 'IPv4 subnet (default: the first free 10.89.N.0/24)')
    .option('--gateway <ip>', "the bridge's address (default: the subnet's first)")
    .option('--internal', 'no route out and no masquerade')
    .option('--no-masquerade', 'do not masquerade traffic leaving the subnet')
    .option('--ipv6-subnet <cidr>', 'an IPv6 subnet as well')
    .option('--ipv6-gateway <ip>', "the IPv6 gateway (default: the subnet's first)")
    .option('--bridge <name>', 'the bridge (default: np-NAME)')
    .option('--icc <true|false>', "inter-container communication (Docker's --icc); false: only what `netplumb policy allow` lets", 'true')
    .option('--json', 'print the definition as JSON')
    .action(async (name: string, o) => {
      const n = await (
        await ops()
      ).create({
        name,
        subnet: o.subnet,
        gateway: o.gateway,
        internal: o.internal === true,
        masquerade: o.masquerade,
        ipv6Subnet: o.ipv6Subnet,
        ipv6Gateway: o.ipv6Gateway,
        bridge: o.bridge,
        ...(parseIcc(o.icc) ? {} : { icc: false }),
      });
      if (o.json) printJson(n);
      else process.stdout.write(`${n.name}\n`);
    });

  network
    .command('ls')
    .alias('list')
    .description('list the defined networks')
    .option('--json', 'print a JSON array')
    .action(async (o) => {
      const list = await (await ops()).list();
      if (o.json) return printJson(list);
      printTable(
        ['NAME', 'BRIDGE', 'SUBNET', 'GATEWAY', 'FLAGS', 'ENDPOINTS'],
        list.map((n) => [
          n.name,
          n.bridge,
          [n.subnet, n.ipv6?.subnet].filter(Boolean).join(','),
          n.gateway,
          [n.internal ? 'internal' : '', n.masquerade ? 'masquerade' : ''].filter(Boolean).join(',') || '-',
          String(n.endpoints),
        ]),
      );
    });

  network
    .command('inspect')
    .description('the definition, its IPAM, the attached targets and the CNI configuration, as JSON')
    .argument('<name...>', 'network names')
    .option('--json', 'the same JSON (the default; accepted for symmetry)')
    .action(async (names: string[]) => {
      const o = await ops();
      const out = [];
      for (const n of names) out.push(await o.inspect(n));
      printJson(out);
    });

  network
    .command('rm')
    .alias('remove')
    .description('remove networks: their bridge, firewall chains, leases and files')
    .argument('<name...>', 'network names')
    .option('-f, --force', 'disconnect attached targets first')
    .option('--json', 'print the removed names as a JSON array')
    .action(async (names: string[], opt) => {
      const o = await ops();
      for (const n of names) {
        const p = progress(`disconnecting from ${n}`);
        try {
          await o.remove(n, opt.force === true, p.step);
        } finally {
          p.end();
        }
      }
      if (opt.json) printJson(names);
      else process.stdout.write(names.map((n) => `${n}\n`).join(''));
    });

  program
    .command('connect')
    .description('attach a target to a network (CNI ADD of netplumb-bridge); idempotent')
    .argument('<network>', 'a network from `netplumb network ls`')
    .argument('<target>', 'a PID, a namespace path (/run/netns/X, /proc/PID/ns/net) or a name given earlier')
    .option('--ip <ip>', 'ask for this address')
    .option('--mac <mac>', "the interface's MAC address")
    .option('-p, --publish <HOST:CONTAINER[/tcp|udp]>', 'publish a port on the host (repeatable)', collect, [])
    .option('--name <name>', 'name the target for later commands')
    .option('--link <ENDPOINT:PORT/PROTO>', "Docker's link: this target may open connections to ENDPOINT's PORT (repeatable; icc=false networks)", collect, [])
    .option('--json', 'print the endpoint as JSON')
    .action(async (net: string, target: string, o) => {
      const links = (o.link as string[]).map(parseLink);
      const x = await ops();
      const ep = await x.connect(net, target, {
        ...(o.ip ? { ip: o.ip } : {}),
        ...(o.mac ? { mac: o.mac } : {}),
        ...(o.name ? { name: o.name } : {}),
        publish: (o.publish as string[]).map(parsePublish),
      });
      for (const l of links) await x.allow(net, { from: [ep.containerId], to: l.to, ports: [l.port] });
      if (o.json) return printJson(ep);
      printTable(['NETWORK', 'TARGET', 'INTERFACE', 'ADDRESSES', 'MAC'], [[ep.network, ep.name ?? ep.target, ep.ifname, ep.addresses.join(','), ep.mac]]);
    });

  program
    .command('disconnect')
    .description('detach a target from a network (CNI DEL); its interface, lease and rules go')
    .argument('<network>')
    .argument('<target>', 'as given to connect, or the name')
    .option('--json', 'print the removed endpoint as JSON')
    .action(async (net: string, target: string, o) => {
      const ep = await (await ops()).disconnect(net, target);
      if (o.json) printJson(ep);
      else process.stdout.write(`${ep.network} ${ep.name ?? ep.target}\n`);
    });
}

export { Option };
