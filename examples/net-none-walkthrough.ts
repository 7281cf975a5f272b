/**
 * Docker's manual `--net=none` walkthrough, done by a program: give an existing process that sits alone in its
 * own network namespace an interface on a bridge, exactly as the guide's commands do, printing each one.
 *
 *   npm run walkthrough -- --pid PID [--bridge docker0] [--address 172.17.42.99/16] [--gateway 172.17.42.1]
 *   npm run walkthrough -- --cleanup          remove stale /var/run/netns links (dead processes)
 *   npm run walkthrough                       demo: sandbox itself, start a container in a harness host, do the
 *                                             steps there, and ping the gateway from the container
 *
 * Without --address/--gateway: the guide's numbers when the bridge is new or has the guide's address; on today's
 * docker0 (172.17.0.1/16) the bridge's own address as gateway and a free address from the top of its subnet,
 * checked with an ARP probe, and said which. Running it again on the same PID reports what is already done
 * instead of failing half-way. The steps are walkthrough(), exported for other front ends.
 * With --pid it acts on the caller's own network namespace as "the host" (run it as root).
 */
import { mkdirSync, readlinkSync, lstatSync, unlinkSync, symlinkSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  openHandleSync,
  ensureBridge,
  getLink,
  findLink,
  createVethPair,
  setLink,
  moveLink,
  addAddress,
  listAddresses,
  addRoute,
  listRoutes,
  removeStaleNetnsSync,
  isSameNetnsSync,
  probeArp,
  NETNS_RUN_DIR,
  type Handle,
  NetplumbError,
} from '../lib/index.js';
import { cidrContains, formatIp, lastOf, tryParseCidr, tryParseIp } from '../lib/addr/ip.js';

/** The guide's numbers, from the Docker of its day (docker0 172.17.42.1/16). */
export const GUIDE = { address: '172.17.42.99/16', gateway: '172.17.42.1' } as const;

export interface WalkthroughOptions {
  /** the process whose network namespace gets the interface */
  pid: number;
  /** default docker0 */
  bridge?: string;
  /** eth0's address with its prefix; default: the guide's, else chosen from the top of the bridge's subnet */
  address?: string;
  /** default: the guide's, else the bridge's own address */
  gateway?: string;
  /** the veth pair's names before B moves (default A and B, as in the guide) */
  hostIf?: string;
  peerIf?: string;
  /** where the steps are told (default: stdout) */
  say?: (line: string) => void;
}

interface Plan {
  pid: number;
  bridge: string;
  address: string;
  gateway: string;
  hostIf: string;
  peerIf: string;
}

/** How many addresses from the top of the subnet are tried before giving up. */
const CANDIDATES = 16;

/**
 * eth0's address and the gateway. Given ones win. A bridge that does not exist yet is made with the guide's
 * numbers, and so is one that has the guide's gateway address. Otherwise (today's docker0 is 172.17.0.1/16)
 * the gateway is the bridge's own address and eth0 gets one from the top of the bridge's subnet — Docker hands
 * out addresses from the bottom — that no one answers an ARP probe for (RFC 5227). An eth0 that already has an
 * address in the subnet (a second run) keeps it.
 */
async function chooseAddresses(host: Handle, ctr: Handle, o: Required<Pick<WalkthroughOptions, 'bridge'>> & WalkthroughOptions, say: (s: string) => void) {
  if (o.address !== undefined && o.gateway !== undefined) return { address: o.address, gateway: o.gateway };
  const br = await findLink(host, o.bridge);
  const owned = br ? (await listAddresses(host, { link: br.index, family: 4 })).map((a) => a.cidr) : [];
  const guideOn = owned.includes(`${GUIDE.gateway}/${GUIDE.address.split('/')[1]}`);
  if (!br || owned.length === 0 || guideOn) {
    return { address: o.address ?? GUIDE.address, gateway: o.gateway ?? GUIDE.gateway };
  }
  const own = owned.find((c) => c.split('/')[0] === o.gateway) ?? owned[0]!;
  const gateway = o.gateway ?? own.split('/')[0]!;
  if (o.address !== undefined) return { address: o.address, gateway };
  const subnet = tryParseCidr(own)!;
  const eth0 = await findLink(ctr, 'eth0');
  if (eth0) {
    const had = (await listAddresses(ctr, { link: eth0.index, family: 4 })).find((a) => cidrContains(subnet, tryParseIp(a.cidr.split('/')[0]!)!));
    if (had) return { address: had.cidr, gateway };
  }
  const taken = new Set(owned.map((c) => c.split('/')[0]));
  const top = lastOf(subnet) - 1n;
  for (let v = top; v > subnet.network && v > top - BigInt(CANDIDATES); v--) {
    const ip = formatIp({ family: 4, value: v });
    if (taken.has(ip)) continue;
    const claimant = br.up ? await probeArp(host, { link: br.index, address: ip }) : undefined;
    if (claimant !== undefined) {
      say(`# ${ip} is taken on ${o.bridge} (${claimant} answered an ARP probe); trying the next one down`);
      continue;
    }
    const address = `${ip}/${subnet.prefix}`;
    say(
      `# ${o.bridge} has ${own}: eth0 gets ${address} from the top of the subnet (Docker hands out addresses from the ` +
        `bottom)${br.up ? ', and no one answered an ARP probe for it (arping -D)' : `; ${o.bridge} is down, so no one can hold it`}`,
    );
    return { address, gateway };
  }
  throw new NetplumbError(`no free address among the top ${CANDIDATES} of ${own} on ${o.bridge}; give one with --address`, {
    code: 'EADDRINUSE',
    op: 'walkthrough',
    object: o.bridge,
  });
}

/** True when everything the guide sets up is in place for this PID. */
async function isDone(host: Handle, ctr: Handle, p: Plan): Promise<boolean> {
  const path = `${NETNS_RUN_DIR}/${p.pid}`;
  try {
    if (!isSameNetnsSync({ path }, { pid: p.pid })) return false;
  } catch {
    return false;
  }
  const a = await findLink(host, p.hostIf);
  const br = await findLink(host, p.bridge);
  const eth0 = await findLink(ctr, 'eth0');
  if (!a || !br || !eth0 || a.masterIndex !== br.index || !a.up || !eth0.up) return false;
  if (!(await listAddresses(ctr, { link: eth0.index })).some((x) => x.cidr === p.address)) return false;
  return (await listRoutes(ctr, { family: 4 })).some((r) => r.dst === 'default' && r.gateway === p.gateway);
}

/**
 * The guide's steps for process `o.pid`, each printed as the command it stands for; steps already done are
 * reported and skipped, so a second run changes nothing. `host` is the namespace that plays the machine.
 * Returns the addresses used.
 */
export async function walkthrough(host: Handle, o: WalkthroughOptions): Promise<{ address: string; gateway: string }> {
  const say = o.say ?? ((s: string) => void process.stdout.write(`${s}\n`));
  const cmd = (s: string) => say(`$ ${s}`);
  const skip = (s: string, why: string) => say(`$ ${s}    # already done: ${why}`);
  const ns = `${o.pid}`;
  // Refuses a PID that shares our namespace: the steps would rename and address the host's own links.
  const ctr = openHandleSync({ pid: o.pid });
  try {
    const bridge = o.bridge ?? 'docker0';
    const p: Plan = { pid: o.pid, bridge, hostIf: o.hostIf ?? 'A', peerIf: o.peerIf ?? 'B', ...(await chooseAddresses(host, ctr, { ...o, bridge }, say)) };
    if (await isDone(host, ctr, p)) {
      say(`# ${p.pid} is already done: ${p.hostIf} is on ${p.bridge}, eth0 in ${NETNS_RUN_DIR}/${ns} has ${p.address} and a default route via ${p.gateway}`);
      return { address: p.address, gateway: p.gateway };
    }
    // 1. name the namespace, as the guide does with a symlink
    cmd(`mkdir -p ${NETNS_RUN_DIR}`);
    mkdirSync(NETNS_RUN_DIR, { recursive: true });
    const link = `${NETNS_RUN_DIR}/${ns}`;
    const target = `/proc/${p.pid}/ns/net`;
    let linked = false;
    try {
      linked = lstatSync(link).isSymbolicLink() && readlinkSync(link) === target && isSameNetnsSync({ path: link }, { pid: p.pid });
      if (!linked) unlinkSync(link); // stale: a dead process with the same PID
    } catch {
      /* absent */
    }
    if (linked) skip(`ln -s ${target} ${link}`, 'linked');
    else {
      cmd(`ln -s ${target} ${link}`);
      symlinkSync(target, link);
    }

    // 2. the bridge, made with the gateway address if it does not exist
    const prefix = p.address.split('/')[1] ?? '16';
    const brAddr = `${p.gateway}/${prefix}`;
    const existing = await findLink(host, p.bridge);
    if (!existing) {
      cmd(`ip link add ${p.bridge} type bridge`);
      cmd(`ip addr add ${brAddr} dev ${p.bridge}`);
      cmd(`ip link set ${p.bridge} up`);
    }
    const { link: br } = await ensureBridge(host, p.bridge, { ...(existing ? {} : { address: brAddr }), up: true });
    const brAddrs = await listAddresses(host, { link: br.index, family: 4 });
    cmd(`ip addr show ${p.bridge}`);
    say(`    ${brAddrs.map((a) => `inet ${a.cidr}`).join(', ') || '(no IPv4 address)'}`);

    // 3. the veth pair A/B, A on the bridge and up
    let a = await findLink(host, p.hostIf);
    const eth0 = await findLink(ctr, 'eth0');
    if (a) {
      const ours = a.kind === 'veth' && a.linkNetnsId !== undefined && eth0?.kind === 'veth' && eth0.peerIndex === a.index;
      const stillHere = a.kind === 'veth' && (await findLink(host, p.peerIf))?.index === a.linkIndex;
      if (!ours && !stillHere) {
        throw new NetplumbError(`link ${p.hostIf} already exists and is not this container's (choose another with --host-if)`, {
          code: 'EEXIST',
          op: 'walkthrough',
          object: p.hostIf,
        });
      }
      skip(`ip link add ${p.hostIf} type veth peer name ${p.peerIf}`, `${p.hostIf} exists`);
    } else {
      if (eth0) throw new NetplumbError(`the container already has an eth0`, { code: 'EEXIST', op: 'walkthrough', object: 'eth0' });
      cmd(`ip link add ${p.hostIf} type veth peer name ${p.peerIf}`);
      await createVethPair(host, { name: p.hostIf, peer: { name: p.peerIf } });
      a = await getLink(host, p.hostIf);
    }
    if (a.masterIndex === br.index) skip(`ip link set ${p.hostIf} master ${p.bridge}`, 'on the bridge');
    else {
      cmd(`ip link set ${p.hostIf} master ${p.bridge}`);
      await setLink(host, a.index, { master: br.index });
    }
    if (a.up) skip(`ip link set ${p.hostIf} up`, 'up');
    else {
      cmd(`ip link set ${p.hostIf} up`);
      await setLink(host, a.index, { up: true });
    }

    // 4. B into the namespace, renamed eth0, up, addressed, with a default route
    if (await findLink(host, p.peerIf)) {
      cmd(`ip link set ${p.peerIf} netns ${ns}`);
      await moveLink(host, p.peerIf, ctr);
    } else skip(`ip link set ${p.peerIf} netns ${ns}`, `${p.peerIf} is not in the host`);
    if (await findLink(ctr, p.peerIf)) {
      cmd(`ip netns exec ${ns} ip link set dev ${p.peerIf} name eth0`);
      await setLink(ctr, p.peerIf, { name: 'eth0' });
    } else skip(`ip netns exec ${ns} ip link set dev ${p.peerIf} name eth0`, 'eth0 is there');
    const e = await getLink(ctr, 'eth0');
    if (e.up) skip(`ip netns exec ${ns} ip link set eth0 up`, 'up');
    else {
      cmd(`ip netns exec ${ns} ip link set eth0 up`);
      await setLink(ctr, e.index, { up: true });
    }
    if ((await listAddresses(ctr, { link: e.index })).some((x) => x.cidr === p.address)) {
      skip(`ip netns exec ${ns} ip addr add ${p.address} dev eth0`, 'addressed');
    } else {
      cmd(`ip netns exec ${ns} ip addr add ${p.address} dev eth0`);
      await addAddress(ctr, { link: e.index, cidr: p.address });
    }
    if ((await listRoutes(ctr, { family: 4 })).some((r) => r.dst === 'default' && r.gateway === p.gateway)) {
      skip(`ip netns exec ${ns} ip route add default via ${p.gateway}`, 'routed');
    } else {
      cmd(`ip netns exec ${ns} ip route add default via ${p.gateway}`);
      await addRoute(ctr, { dst: 'default', gateway: p.gateway });
    }
    say(`# done: process ${p.pid} has eth0 ${p.address} on ${p.bridge}, default route via ${p.gateway}`);
    return { address: p.address, gateway: p.gateway };
  } finally {
    ctr.close();
  }
}

const say = (s: string) => process.stdout.write(`${s}\n`);

function cleanup(): void {
  say(`$ find -L ${NETNS_RUN_DIR} -type l -delete`);
  const removed = removeStaleNetnsSync();
  say(removed.length ? `# removed ${removed.map((n) => `${NETNS_RUN_DIR}/${n}`).join(' ')}` : '# nothing stale');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      pid: { type: 'string' },
      bridge: { type: 'string', default: 'docker0' },
      address: { type: 'string' },
      gateway: { type: 'string' },
      'host-if': { type: 'string', default: 'A' },
      'peer-if': { type: 'string', default: 'B' },
      cleanup: { type: 'boolean', default: false },
    },
  });
  const options = (pid: number): WalkthroughOptions => ({
    pid,
    bridge: values.bridge!,
    address: values.address,
    gateway: values.gateway,
    hostIf: values['host-if']!,
    peerIf: values['peer-if']!,
  });
  if (values.pid !== undefined) {
    const pid = Number(values.pid);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`--pid must be a process ID, not ${values.pid}`);
    const host = openHandleSync();
    try {
      await walkthrough(host, options(pid));
    } finally {
      host.close();
    }
    if (values.cleanup) cleanup();
    return 0;
  }
  if (values.cleanup) {
    cleanup();
    return 0;
  }
  // The demonstration: a throwaway sandbox plays the machine, a harness container plays `docker run --net=none`.
  const { sandboxed, createHost, ping } = await import('../netns-harness/index.js');
  await sandboxed();
  const machine = await createHost('walkthrough-host');
  try {
    const container = await machine.createContainer('container', { loopbackUp: true });
    say(`# a container with no network: process ${container.pid}, alone in ${container.netnsId}`);
    const host = openHandleSync({ pid: machine.pid });
    let gateway: string;
    try {
      ({ gateway } = await walkthrough(host, options(container.pid)));
      say('# and again, which finds everything in place:');
      await walkthrough(host, options(container.pid));
    } finally {
      host.close();
    }
    say(`$ ip netns exec ${container.pid} ping -c 3 ${gateway}`);
    const p = await ping(container, gateway, { count: 3, interval: 0.2 });
    say(p.output.trim());
    await container.destroy();
    say(`# process ${container.pid} exited; its namespace is gone and ${NETNS_RUN_DIR}/${container.pid} dangles`);
    cleanup();
    return p.ok ? 0 : 1;
  } finally {
    await machine.destroy();
  }
}

// Run as a program (not when imported for walkthrough()).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  try {
    process.exitCode = await main();
  } catch (e) {
    process.stderr.write(`walkthrough: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
