/**
 * Docker's manual `--net=none` walkthrough, done by a program: give an existing process that sits alone in its
 * own network namespace an interface on a bridge, exactly as the guide's commands do, printing each one.
 *
 *   npm run walkthrough -- --pid PID [--bridge docker0] [--address 172.17.42.99/16] [--gateway 172.17.42.1]
 *   npm run walkthrough -- --cleanup          remove stale /var/run/netns links (dead processes)
 *   npm run walkthrough                       demo: sandbox itself, start a container in a harness host, do the
 *                                             steps there, and ping the gateway from the container
 *
 * Running it again on the same PID reports what is already done instead of failing half-way.
 * With --pid it acts on the caller's own network namespace as "the host" (run it as root).
 */
import { mkdirSync, readlinkSync, lstatSync, unlinkSync, symlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  openHandleSync, ensureBridge, getLink, findLink, createVethPair, setLink, moveLink, addAddress, listAddresses,
  addRoute, listRoutes, removeStaleNetnsSync, isSameNetnsSync, NETNS_RUN_DIR, type Handle, NetplumbError,
} from '../lib/index.js';

const { values } = parseArgs({
  options: {
    pid: { type: 'string' },
    bridge: { type: 'string', default: 'docker0' },
    address: { type: 'string', default: '172.17.42.99/16' },
    gateway: { type: 'string', default: '172.17.42.1' },
    'host-if': { type: 'string', default: 'A' },
    'peer-if': { type: 'string', default: 'B' },
    cleanup: { type: 'boolean', default: false },
  },
});

const say = (s: string) => process.stdout.write(`${s}\n`);
const cmd = (s: string) => say(`$ ${s}`);
const skip = (s: string, why: string) => say(`$ ${s}    # already done: ${why}`);

interface Plan {
  pid: number;
  bridge: string;
  address: string;
  gateway: string;
  hostIf: string;
  peerIf: string;
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

export async function walkthrough(host: Handle, p: Plan): Promise<void> {
  const ns = `${p.pid}`;
  // Refuses a PID that shares our namespace: the steps would rename and address the host's own links.
  const ctr = openHandleSync({ pid: p.pid });
  try {
    if (await isDone(host, ctr, p)) {
      say(`# ${p.pid} is already done: ${p.hostIf} is on ${p.bridge}, eth0 in ${NETNS_RUN_DIR}/${ns} has ${p.address} and a default route via ${p.gateway}`);
      return;
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
          code: 'EEXIST', op: 'walkthrough', object: p.hostIf,
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
  } finally {
    ctr.close();
  }
}

function cleanup(): void {
  cmd(`find -L ${NETNS_RUN_DIR} -type l -delete`);
  const removed = removeStaleNetnsSync();
  say(removed.length ? `# removed ${removed.map((n) => `${NETNS_RUN_DIR}/${n}`).join(' ')}` : '# nothing stale');
}

const plan = (pid: number): Plan => ({
  pid,
  bridge: values.bridge!,
  address: values.address!,
  gateway: values.gateway!,
  hostIf: values['host-if']!,
  peerIf: values['peer-if']!,
});

async function main(): Promise<number> {
  if (values.pid !== undefined) {
    const pid = Number(values.pid);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`--pid must be a process ID, not ${values.pid}`);
    const host = openHandleSync();
    try {
      await walkthrough(host, plan(pid));
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
    try {
      await walkthrough(host, plan(container.pid));
      say('# and again, which finds everything in place:');
      await walkthrough(host, plan(container.pid));
    } finally {
      host.close();
    }
    cmd(`ip netns exec ${container.pid} ping -c 3 ${values.gateway}`);
    const p = await ping(container, values.gateway!, { count: 3, interval: 0.2 });
    say(p.output.trim());
    await container.destroy();
    say(`# process ${container.pid} exited; its namespace is gone and ${NETNS_RUN_DIR}/${container.pid} dangles`);
    cleanup();
    return p.ok ? 0 : 1;
  } finally {
    await machine.destroy();
  }
}

try {
  process.exitCode = await main();
} catch (e) {
  process.stderr.write(`walkthrough: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
