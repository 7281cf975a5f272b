/**
 * netplumb-bridge: Docker's bridge network mode as a CNI plugin, configured like the reference `bridge`.
 *
 * ADD (all or nothing; every step registers its undo):
 *   IPAM ADD (first, so an exhausted range fails before anything exists) → bridge (created with a fixed MAC if
 *   missing, up, accept_ra=0, gateway addresses) → veth pair created in one request with the host end
 *   `veth<hash>` up on the bridge and the peer made directly inside the container's namespace as CNI_IFNAME →
 *   host end's bridge port options and accept_ra=0, ip_forward → in the container: accept_dad/arp_notify, up,
 *   addresses, routes → wait for the host port to be up → gratuitous ARP → nftables (masquerade, published
 *   ports, isolation, spoof check) in one transaction → Result.
 * DEL needs neither the container's namespace nor its addresses: the rules are found by attachment, the host
 * veth by its derived name (and checked by its alias), the IPAM by container ID. It never deletes the bridge.
 * CHECK compares the kernel, the IPAM and nftables with prevResult and the configuration and lists the drift.
 * GC collects IPAM reservations, firewall state, host veths and attachment records of attachments the runtime
 * no longer knows.
 * Every attachment is recorded (lib/modes/state.ts, mode "bridge": the container's namespace path and inode), so
 * that netplumb-container can join a bridge-attached container by its ID (Docker's --net=container:<id>).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, withRollback, type UndoStack } from '../cni/ipam.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute } from '../cni/types.js';
import { CURRENT_VERSION } from '../cni/version.js';
import { canonicalCidr, cidrOverlaps, formatIp, tryParseCidr } from '../addr/ip.js';
import { randomMac } from '../addr/mac.js';
import { addAddress, deleteAddress, listAddresses, type Address } from '../net/addr.js';
import { ensureBridge } from '../net/bridge.js';
import { waitForOperUp } from '../net/events.js';
import { openHandle, type Handle } from '../net/handle.js';
import { createLink, deleteLink, findLink, getLink, listLinks, setBridgePort, setLink, type Link } from '../net/link.js';
import { NLM_F_APPEND, NLM_F_CREATE, RTM_NEWROUTE } from '../netlink/constants.js';
import { listRoutes, routeMessage, type RouteSpec } from '../net/route.js';
import { readSysctl, setAcceptRa, writeSysctl } from '../net/sysctl.js';
import {
  addContainerRules, checkContainerRules, gcFirewall, removeContainerRules, type ContainerFirewall,
} from '../firewall/index.js';
import {
  bridgeError, hasIpam, hostVethName, parseBridgeConf, parseVethAlias, vethAlias,
  type BridgeConf,
} from './bridge-config.js';
import { attachmentKey, readAttachment, removeAttachment, staleAttachments, writeAttachment, type AttachmentKey } from './state.js';
import { faultPoint } from '../sys/fault.js';
import { ERR, Teardown } from '../errors.js';
import { mark } from './timing.js';

/** How long the host end may take to come up (the reference gives up after about 2.5 s). */
const PORT_UP_TIMEOUT_MS = 5000;
/** How long IPv6 duplicate address detection may take when `enabledad` (the reference waits 10 s). */
const DAD_TIMEOUT_MS = 10_000;

type Json = Record<string, unknown>;

const errCode = (e: unknown) => (e as { code?: string } | null)?.code;
const recordKey = (req: Pick<CniRequest, 'containerId' | 'name' | 'ifname'>): AttachmentKey => attachmentKey(req, 'bridge');

/** Says on stderr which step of a teardown failed (the teardown goes on; its error lists them all). */
function logFailure(verb: string, subject: string): (step: string, e: unknown) => void {
  return (step, e) => process.stderr.write(`netplumb-bridge: ${verb} ${subject}: ${step}: ${(e as Error).message}\n`);
}

/**
 * `NETPLUMB_FAULT=<step>` makes ADD fail right after that step (tests of the rollback; like the reference's
 * debugPostIPAMError); `NETPLUMB_FAULT=kill:<step>` kills the plugin there (tests of crash safety).
 * lib/sys/fault.ts; steps of DEL and GC are `del-…` and `gc-…`.
 */
function faultInjector(req: CniRequest): (step: string) => void {
  const want = req.env.NETPLUMB_FAULT;
  return (step) => faultPoint(step, want);
}

// ── addresses and routes from the IPAM result ───────────────────────────────────────────────────────────

interface Plan {
  ips: CniIpConfig[];
  routes: CniRoute[];
  /** `gateway/prefix` per address, to put on the bridge (isGateway) */
  bridgeAddrs: string[];
  /** the first gateway of each family: routes without `gw` go through it */
  gw4: string | undefined;
  gw6: string | undefined;
}

/** The reference's calcGateways: gateways default to the subnet's first address, isDefaultGateway adds default routes. */
function plan(conf: BridgeConf, ipam: CniResult | undefined): Plan {
  const ips = (ipam?.ips ?? []).map((ip) => ({ ...ip }));
  const routes = (ipam?.routes ?? []).map((r) => ({ ...r }));
  const bridgeAddrs: string[] = [];
  let gw4: string | undefined;
  let gw6: string | undefined;
  const haveDefault = new Set<number>();
  for (const ip of ips) {
    const c = tryParseCidr(ip.address)!;
    if (ip.gateway === undefined && conf.isGateway) ip.gateway = formatIp({ family: c.family, value: c.network + 1n });
    if (conf.isDefaultGateway && !haveDefault.has(c.family)) {
      const dflt = c.family === 4 ? '0.0.0.0/0' : '::/0';
      if (!routes.some((r) => r.gw !== undefined && r.dst === dflt)) routes.push({ dst: dflt, gw: ip.gateway });
      haveDefault.add(c.family);
    }
    if (conf.isGateway && ip.gateway !== undefined) bridgeAddrs.push(`${ip.gateway}/${c.prefix}`);
    if (ip.gateway !== undefined) {
      if (c.family === 4) gw4 ??= ip.gateway;
      else gw6 ??= ip.gateway;
    }
  }
  return { ips, routes, bridgeAddrs, gw4, gw6 };
}

function routeSpec(r: CniRoute, dev: number, p: Plan): RouteSpec {
  const c = tryParseCidr(r.dst)!;
  const gateway = r.gw ?? (c.family === 4 ? p.gw4 : p.gw6);
  const spec: RouteSpec = { dst: c.prefix === 0 ? 'default' : r.dst, family: c.family, dev };
  if (gateway !== undefined) spec.gateway = gateway;
  if (r.priority !== undefined) spec.metric = r.priority;
  if (r.table !== undefined) spec.table = r.table;
  if (r.scope !== undefined) spec.scope = r.scope;
  return spec;
}

/**
 * Adds a route next to any with the same destination (NLM_F_APPEND, as the reference's RouteAddEcmp does): a
 * second interface of one container on the same network gets its own default route instead of EEXIST.
 */
async function appendRoute(h: Handle, r: RouteSpec): Promise<void> {
  const msg = await routeMessage(h, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, r);
  await h.request(msg, { op: 'RTM_NEWROUTE', what: `add route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev #${String(r.dev)}`, object: r.dst });
}

// ── the bridge ───────────────────────────────────────────────────────────────────────────────────────────

/** Whether a bridge still has ports (so nobody else is using it right now). */
async function hasPorts(h: Handle, bridgeIndex: number): Promise<boolean> {
  return (await listLinks(h, { master: bridgeIndex })).length > 0;
}

/**
 * The bridge, created if missing (fixed random MAC, so it does not change as ports come and go; MTU; up),
 * promiscuous if asked, accept_ra off, with the gateway addresses (the reference's rules: an IPv4 bridge has
 * one address, a different one is a conflict unless forceAddress replaces it). A failed ADD deletes a bridge
 * it created, or an address it added, only while the bridge has no ports (a concurrent ADD may be using it).
 */
async function setupBridge(h: Handle, conf: BridgeConf, addrs: string[], undo: UndoStack): Promise<{ link: Link; created: boolean }> {
  let r;
  try {
    r = await ensureBridge(h, conf.bridge, { mac: randomMac(), up: true, ...(conf.mtu ? { mtu: conf.mtu } : {}) });
  } catch (e) {
    if (errCode(e) === ERR.LINK_KIND || errCode(e) === 'EEXIST') throw bridgeError(CNI_ERR.BRIDGE_CONFLICT, (e as Error).message, conf.bridge, e);
    throw e;
  }
  const br = r.link;
  if (r.created) {
    undo.push(`delete bridge ${conf.bridge} (created by this ADD) unless in use`, async () => {
      if (!(await hasPorts(h, br.index))) await deleteLink(h, br.index).catch((e) => (errCode(e) === 'ENODEV' ? undefined : Promise.reject(e)));
    });
  }
  if (conf.promiscMode && !br.promisc) await setLink(h, br.index, { promisc: true });
  try {
    setAcceptRa(h, conf.bridge, 0); // we own the routes of this interface (CVE-2020-13401)
  } catch {
    /* no IPv6 in this namespace */
  }
  if (addrs.length > 0) {
    const have = await listAddresses(h, { link: br.index });
    for (const want of addrs) {
      const w = tryParseCidr(want)!;
      const wantText = canonicalCidr(want);
      if (have.some((a) => a.cidr === wantText)) continue;
      for (const a of have) {
        if (a.family !== w.family) continue;
        if (w.family === 4 || cidrOverlaps(tryParseCidr(a.cidr)!, w)) {
          if (!conf.forceAddress) {
            throw bridgeError(CNI_ERR.BRIDGE_CONFLICT, `bridge ${conf.bridge} already has an IP address (${a.cidr}) different from ${want}; set forceAddress to replace it`, conf.bridge);
          }
          await deleteAddress(h, br.index, a.cidr).catch((e) => (errCode(e) === 'EADDRNOTAVAIL' ? undefined : Promise.reject(e)));
        }
      }
      try {
        // IPv6 gateways skip DAD: the subnet is ours, and a tentative gateway would drop the first packets.
        await addAddress(h, br.index, want, w.family === 6 ? { nodad: true } : {});
        if (!r.created) {
          undo.push(`remove address ${want} from bridge ${conf.bridge} unless in use`, async () => {
            if (!(await hasPorts(h, br.index))) await deleteAddress(h, br.index, want).catch(() => undefined);
          });
        }
      } catch (e) {
        if (errCode(e) !== 'EEXIST') throw e; // a concurrent ADD put it there
      }
    }
  }
  return r;
}

// ── small helpers ────────────────────────────────────────────────────────────────────────────────────────

function ignoreMissing(e: unknown): void {
  if (errCode(e) !== 'ENODEV') throw e;
}

function writeHostSysctl(h: Handle, key: string, value: number, optional: boolean): void {
  try {
    writeSysctl(h, key, value);
  } catch (e) {
    if (!optional) throw e;
  }
}

/** Opens the files of several sysctls inside the container's namespace in one setns window, then writes them. */
function writeContainerSysctls(h: Handle, entries: [key: string, value: number][]): void {
  const fds = h.inNetns('sysctls', () =>
    entries.map(([key]) => {
      try {
        return openSync(`/proc/sys/${key}`, 'w');
      } catch {
        return -1; // the reference ignores these failures too (no IPv6 in the container, …)
      }
    }),
  );
  fds.forEach((fd, i) => {
    if (fd < 0) return;
    try {
      writeSync(fd, `${entries[i]![1]}\n`);
    } catch {
      /* as above */
    } finally {
      closeSync(fd);
    }
  });
}

/** Waits until no IPv6 address of the link is tentative (DAD done), bounded; fails if DAD found a duplicate. */
async function settleAddresses(h: Handle, index: number): Promise<void> {
  const deadline = Date.now() + DAD_TIMEOUT_MS;
  for (;;) {
    const addrs = await listAddresses(h, { link: index, family: 6 });
    const failed = addrs.find((a) => a.dadfailed);
    if (failed) throw new CniError(CNI_ERR.INTERNAL, `duplicate address detection failed for ${failed.cidr}`, { object: failed.cidr });
    if (!addrs.some((a) => a.tentative)) return;
    if (Date.now() > deadline) throw new CniError(CNI_ERR.INTERNAL, `IPv6 addresses still tentative after ${DAD_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function firewallSpec(req: CniRequest, conf: BridgeConf, ips: CniIpConfig[], hostVeth: string, mac: string): ContainerFirewall {
  return {
    network: conf.network,
    bridge: conf.bridge,
    isolate: conf.isolate,
    allowBridges: conf.allowBridges,
    containerId: req.containerId,
    ifname: req.ifname,
    ips: ips.map((i) => i.address),
    masquerade: conf.ipMasq,
    portMappings: conf.portMappings,
    spoofCheck: conf.macspoofchk,
    hostVeth,
    mac,
  };
}

/** This plugin's Result appended to a prevResult (chaining): interfaces after the earlier ones, indexes shifted. */
function merge(prev: CniResult | undefined, ours: CniResult): CniResult {
  if (prev === undefined) return ours;
  const shift = prev.interfaces?.length ?? 0;
  const dns: CniDns | undefined = ours.dns ?? prev.dns;
  const out: CniResult = {
    cniVersion: CURRENT_VERSION,
    interfaces: [...(prev.interfaces ?? []), ...(ours.interfaces ?? [])],
    ips: [...(prev.ips ?? []), ...(ours.ips ?? []).map((ip) => ({ ...ip, interface: ip.interface === undefined ? undefined : ip.interface + shift }))],
    routes: [...(prev.routes ?? []), ...(ours.routes ?? [])],
  };
  if (dns !== undefined) out.dns = dns;
  return out;
}

// ── ADD ──────────────────────────────────────────────────────────────────────────────────────────────────

async function add(req: CniRequest): Promise<CniResult> {
  const conf = parseBridgeConf(req);
  const fault = faultInjector(req);
  mark('parse');
  const host = openHandle();
  let ctr: Handle | undefined;
  try {
    const hostVeth = hostVethName(req.containerId, req.ifname);
    // A repeated ADD (no DEL in between) must fail before the IPAM answers with the attachment's address, or
    // the rollback would release the address the first ADD still uses.
    if (await findLink(host, hostVeth)) {
      throw bridgeError(CNI_ERR.ATTACHMENT_EXISTS, `host interface ${hostVeth} already exists: is ${req.containerId}/${req.ifname} attached already? (DEL it first)`, hostVeth);
    }
    // A `bridge` naming another kind of link (the uplink, lo) fails later anyway; failing before the IPAM keeps
    // the store untouched (its rollback releases the address but cannot rewind last_reserved_ip).
    const named = await findLink(host, conf.bridge);
    if (named && named.kind !== 'bridge') {
      throw bridgeError(CNI_ERR.BRIDGE_CONFLICT, `"bridge": ${conf.bridge} exists and is not a bridge (kind ${named.infoKind ?? 'device'}); refusing to use it`, conf.bridge);
    }
    // Entering the container's namespace fails when the plugin lacks the privilege there (a namespace of
    // another user namespace, rootless): find out before the IPAM or the bridge are touched.
    const ctrNs = openHandle({ path: req.netns });
    ctr = ctrNs;
    return await withRollback(async (undo) => {
      const ctr = ctrNs; // narrowed for the steps below; the outer `ctr` is for closing
      let ipam: CniResult | undefined;
      if (conf.hasIpam) {
        ipam = await ipamAdd(req, undo);
        mark('ipam');
        if ((ipam.ips ?? []).length === 0) throw new CniError(CNI_ERR.INTERNAL, `IPAM plugin returned no IP address for ${req.containerId}/${req.ifname}`);
        fault('ipam');
      }
      const p = plan(conf, ipam);

      const { link: br, created } = await setupBridge(host, conf, p.bridgeAddrs, undo);
      mark('bridge');
      fault('bridge');

      // The veth pair: one request creates both ends, the host end up on the bridge, the peer inside the container.
      const mac = conf.mac ?? randomMac();
      const mtu = conf.mtu ? { mtu: conf.mtu } : {};
      let veth: Link;
      try {
        veth = await createLink(host, {
          kind: 'veth',
          name: hostVeth,
          ...mtu,
          master: br.index,
          up: true,
          alias: vethAlias(conf.network, req.containerId, req.ifname),
          peer: { name: req.ifname, mac, ...mtu, netns: ctr },
        });
      } catch (e) {
        if (errCode(e) !== 'EEXIST') throw e;
        const which = (await findLink(host, hostVeth)) ? `host interface ${hostVeth}` : `interface ${req.ifname} in ${req.netns}`;
        throw bridgeError(CNI_ERR.ATTACHMENT_EXISTS, `${which} already exists: is ${req.containerId}/${req.ifname} attached already? (DEL it first)`, which, e);
      }
      undo.push(`delete veth ${hostVeth}`, () => deleteLink(host, veth.index).catch(ignoreMissing));
      const ctrIndex = veth.kind === 'veth' && veth.peerIndex !== undefined ? veth.peerIndex : (await getLink(ctr, req.ifname)).index;
      mark('veth');
      fault('veth');

      // Host side: port options, sysctls. Hairpin is needed for published ports (a container reaching its own port).
      const hairpin = conf.hairpinMode || conf.portMappings.length > 0;
      if (hairpin || conf.portIsolation) await setBridgePort(host, veth.index, { hairpin, ...(conf.portIsolation ? { isolated: true } : {}) });
      writeHostSysctl(host, `net/ipv6/conf/${hostVeth}/accept_ra`, 0, true);
      const families = new Set(p.ips.map((i) => tryParseCidr(i.address)!.family));
      if (p.bridgeAddrs.length > 0 || conf.ipMasq || conf.portMappings.length > 0) {
        if (families.has(4)) writeHostSysctl(host, 'net/ipv4/ip_forward', 1, false);
        if (families.has(6)) writeHostSysctl(host, 'net/ipv6/conf/all/forwarding', 1, false);
      }
      mark('host');
      fault('host');

      // Container side: sysctls, then up and addresses in one batch, then routes in another.
      const sysctls: [string, number][] = [[`net/ipv6/conf/${req.ifname}/accept_dad`, conf.enabledad ? 1 : 0]];
      if (conf.enabledad) sysctls.push([`net/ipv6/conf/${req.ifname}/enhanced_dad`, 1]);
      sysctls.push([`net/ipv4/conf/${req.ifname}/arp_notify`, 1]);
      // The plugin alone configures the container's addresses and routes: a router advertisement another
      // container floods over the bridge must not add a SLAAC address or a default route (CVE-2020-10749's
      // attack, aimed at the neighbours rather than the host).
      sysctls.push([`net/ipv6/conf/${req.ifname}/accept_ra`, 0]);
      if (families.has(6)) sysctls.push(['net/ipv6/conf/lo/disable_ipv6', 0], [`net/ipv6/conf/${req.ifname}/disable_ipv6`, 0]);
      writeContainerSysctls(ctr, sysctls);
      const c = ctr;
      await Promise.all([
        ...(conf.disableContainerInterface ? [] : [setLink(c, ctrIndex, { up: true })]),
        ...p.ips.map((ip) => addAddress(c, ctrIndex, ip.address)),
      ]);
      if (conf.enabledad && families.has(6)) await settleAddresses(c, ctrIndex);
      // Two routes that end up the same (isDefaultGateway's and an IPAM default route without `gw`) go in once.
      const specs = new Map(p.routes.map((r) => routeSpec(r, ctrIndex, p)).map((r) => [JSON.stringify(r), r]));
      await Promise.all([...specs.values()].map((r) => appendRoute(c, r)));
      mark('container');
      fault('container');

      if (!conf.disableContainerInterface) {
        try {
          await waitForOperUp(host, veth.index, { timeoutMs: PORT_UP_TIMEOUT_MS });
        } catch (e) {
          if (errCode(e) !== ERR.TIMEOUT) throw e;
          throw bridgeError(CNI_ERR.PORT_NOT_UP, `bridge port ${hostVeth} did not come up within ${PORT_UP_TIMEOUT_MS} ms`, hostVeth, e);
        }
        mark('port-up');
        // Gratuitous ARP for every IPv4 address, now that the port forwards: with arp_notify=1, setting the MAC
        // (to the same value) makes the kernel announce the addresses itself. Cheaper than an AF_PACKET socket,
        // whose close waits for an RCU grace period (~10 ms).
        if (families.has(4)) await setLink(c, ctrIndex, { mac });
        mark('garp');
      }
      fault('garp');

      const fw = firewallSpec(req, conf, p.ips, hostVeth, mac);
      try {
        await addContainerRules(fw);
      } catch (e) {
        if (errCode(e) === ERR.HOST_PORT_IN_USE) throw bridgeError(CNI_ERR.HOST_PORT_IN_USE, (e as Error).message, (e as { object?: string }).object, e);
        if (errCode(e)?.startsWith('ERR_INVALID_') && (e as { op?: string }).op === 'firewall') throw invalidConfig((e as Error).message, (e as { object?: string }).object, e);
        throw e;
      }
      undo.push('remove firewall rules', () => removeContainerRules({ containerId: req.containerId, ifname: req.ifname, network: conf.network }));
      mark('firewall');
      // Last, so that a record always stands for a complete attachment: netplumb-container trusts it.
      writeAttachment({ ...recordKey(req), netns: req.netns, netnsId: ctr.netnsId });
      undo.push('forget the attachment record', () => removeAttachment(recordKey(req)));
      mark('record');
      fault('firewall');

      // The bridge's MAC may have changed as our port joined if someone else created it without a fixed one.
      const brMac = created ? br.mac : (await getLink(host, br.index)).mac;
      const ctrIf: CniInterface = { name: req.ifname, mac, sandbox: req.netns };
      if (conf.mtu) ctrIf.mtu = conf.mtu;
      const ours: CniResult = {
        cniVersion: CURRENT_VERSION,
        interfaces: [
          { name: conf.bridge, ...(brMac ? { mac: brMac } : {}) },
          { name: hostVeth, ...(veth.mac ? { mac: veth.mac } : {}) },
          ctrIf,
        ],
        ips: p.ips.map((ip) => ({ ...ip, interface: 2 })),
        routes: p.routes,
      };
      const dns = conf.dns ?? ipam?.dns;
      if (dns !== undefined) ours.dns = dns;
      mark('result');
      return merge(req.prevResult, ours);
    });
  } finally {
    ctr?.close();
    host.close();
  }
}

// ── DEL ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Deletes the host veth of an attachment if it is there and is ours: its alias names the attachment, or it
 * has no alias at all under the attachment's derived name — an ADD killed between creating the pair and
 * naming it (the kernel takes an alias only after creation) left it, and the name, a hash of container ID and
 * interface, says whose it is. (Two networks cannot both have one, as its peer is CNI_IFNAME in the container.)
 */
async function deleteHostVeth(h: Handle, network: string, containerId: string, ifname: string): Promise<boolean> {
  const alias = vethAlias(network, containerId, ifname);
  const name = hostVethName(containerId, ifname);
  let link = await findLink(h, name);
  // Not under its name (gone with the namespace, usually; or renamed by someone): look for its alias.
  if (!link) link = (await listLinks(h, { kind: 'veth' })).find((l) => l.alias === alias);
  if (!link || link.kind !== 'veth') return false;
  if (link.alias !== alias && !(link.alias === undefined && link.name === name)) return false;
  await deleteLink(h, link.index).catch(ignoreMissing);
  return true;
}

/**
 * The derived host veth names of attachments of this network that still hold an address but are not valid,
 * when the IPAM is a host-local store: how GC recognises a veth left without its alias by a killed ADD (the
 * ADD took its address first). Read before the IPAM's own GC releases those addresses.
 */
async function staleHolderVeths(req: CniRequest, keep: Set<string>): Promise<Set<string>> {
  const type = (req.config.ipam as Json | undefined)?.type;
  if (type !== 'netplumb-host-local' && type !== 'host-local') return new Set();
  const [{ storeRef }, { holders }] = await Promise.all([import('../cni/host-local.js'), import('../ipam/allocator.js')]);
  const names = holders(storeRef(req)).map((a) => hostVethName(a.containerId, a.ifname));
  return new Set(names.filter((n) => !keep.has(n)));
}

async function del(req: CniRequest): Promise<void> {
  const network = req.name;
  const fault = faultInjector(req);
  const subject = `${req.containerId}/${req.ifname}`;
  const teardown = new Teardown('DEL', subject, logFailure('DEL', subject));
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    await teardown.step(what, fn);
    mark(what);
  };
  // Rules first (plugins#810: they go even without a namespace), then the veth, then the addresses, so an
  // address is never handed out again while the old interface or its rules still exist.
  await attempt('firewall', () => removeContainerRules({ containerId: req.containerId, ifname: req.ifname, network }));
  fault('del-firewall');
  await attempt('veth', async () => {
    const h = openHandle();
    try {
      await deleteHostVeth(h, network, req.containerId, req.ifname);
    } finally {
      h.close();
    }
  });
  fault('del-veth');
  if (hasIpam(req.config as Json)) await attempt('ipam', () => ipamDel(req));
  fault('del-ipam');
  await attempt('record', async () => removeAttachment(recordKey(req)));
  teardown.finish();
}

// ── CHECK ────────────────────────────────────────────────────────────────────────────────────────────────

async function check(req: CniRequest): Promise<void> {
  const conf = parseBridgeConf(req);
  const prev = req.prevResult;
  if (prev === undefined) throw invalidConfig('CHECK needs prevResult (the Result of ADD)', 'prevResult');
  if (conf.hasIpam) await ipamCheck(req);
  const drift: string[] = [];
  const ifs = prev.interfaces ?? [];
  const hostVeth = hostVethName(req.containerId, req.ifname);
  const brIf = ifs.find((i) => i.name === conf.bridge && !i.sandbox);
  const ctrIfIdx = ifs.findIndex((i) => i.name === req.ifname && i.sandbox === req.netns);
  const ctrIf = ifs[ctrIfIdx];
  const vethIf = ifs.find((i) => i.name === hostVeth && !i.sandbox);
  if (!brIf) drift.push(`prevResult has no interface for bridge ${conf.bridge}`);
  if (!ctrIf) drift.push(`prevResult has no interface ${req.ifname} in sandbox ${req.netns}`);
  if (!vethIf) drift.push(`prevResult has no host interface ${hostVeth}`);

  const host = openHandle();
  const ctr = openHandle({ path: req.netns });
  try {
    const br = await findLink(host, conf.bridge);
    if (!br) drift.push(`bridge ${conf.bridge} not found`);
    else {
      if (br.kind !== 'bridge') drift.push(`${conf.bridge} is not a bridge (kind ${br.infoKind ?? 'device'})`);
      if (!br.up) drift.push(`bridge ${conf.bridge} is down`);
      if (br.promisc !== conf.promiscMode) drift.push(`bridge ${conf.bridge} promiscuous mode is ${br.promisc ? 'on' : 'off'}, configured ${conf.promiscMode ? 'on' : 'off'}`);
      if (brIf?.mac && brIf.mac !== br.mac) drift.push(`bridge ${conf.bridge} MAC is ${br.mac}, prevResult says ${brIf.mac}`);
    }
    const c = await findLink(ctr, req.ifname);
    if (!c) drift.push(`interface ${req.ifname} not found in ${req.netns}`);
    else {
      if (c.kind !== 'veth') drift.push(`${req.ifname} in the container is not a veth (kind ${c.infoKind ?? 'device'})`);
      if (!conf.disableContainerInterface && !c.up) drift.push(`${req.ifname} in the container is down`);
      if (ctrIf?.mac && ctrIf.mac !== c.mac) drift.push(`${req.ifname} MAC is ${c.mac}, prevResult says ${ctrIf.mac}`);
      if (conf.mtu && c.mtu !== conf.mtu) drift.push(`${req.ifname} MTU is ${c.mtu}, configured ${conf.mtu}`);
    }
    const v = await findLink(host, hostVeth);
    if (!v) drift.push(`host interface ${hostVeth} not found`);
    else {
      if (v.kind !== 'veth') drift.push(`${hostVeth} is not a veth`);
      if (br && v.masterIndex !== br.index) drift.push(`${hostVeth} is not a port of bridge ${conf.bridge}`);
      if (c && v.kind === 'veth' && v.peerIndex !== c.index) drift.push(`${hostVeth} is not the peer of ${req.ifname} in the container`);
      if (vethIf?.mac && vethIf.mac !== v.mac) drift.push(`${hostVeth} MAC is ${v.mac}, prevResult says ${vethIf.mac}`);
      const hairpin = conf.hairpinMode || conf.portMappings.length > 0;
      if (v.bridgePort && v.bridgePort.hairpin !== hairpin) drift.push(`${hostVeth} hairpin mode is ${v.bridgePort.hairpin ? 'on' : 'off'}, expected ${hairpin ? 'on' : 'off'}`);
      if (v.bridgePort && v.bridgePort.isolated !== conf.portIsolation) drift.push(`${hostVeth} port isolation is ${v.bridgePort.isolated ? 'on' : 'off'}, configured ${conf.portIsolation ? 'on' : 'off'}`);
      if (!conf.disableContainerInterface && v.operstate !== 'up') drift.push(`${hostVeth} is ${v.operstate}, not up`);
    }

    // Addresses and routes of prevResult, on the container interface.
    const ours = (prev.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === ctrIfIdx);
    let addrs: Address[] = [];
    if (c) addrs = await listAddresses(ctr, { link: c.index });
    for (const ip of ours) {
      if (!addrs.some((a) => a.cidr === canonicalCidr(ip.address))) drift.push(`address ${ip.address} missing from ${req.ifname}`);
    }
    if (conf.hasIpam && ours.length === 0) drift.push(`prevResult has no address for ${req.ifname}`);
    const routes = await listRoutes(ctr, { table: 'all' });
    const p = plan(conf, { cniVersion: CURRENT_VERSION, ips: ours });
    for (const r of prev.routes ?? []) {
      const cidr = tryParseCidr(r.dst);
      if (!cidr) continue;
      const dst = cidr.prefix === 0 ? 'default' : canonicalCidr(r.dst);
      const gw = r.gw ?? (cidr.family === 4 ? p.gw4 : p.gw6);
      const table = r.table ?? 254;
      const found = routes.some(
        (x) => x.family === cidr.family && x.dst === dst && x.table === table && (gw === undefined || x.gateway === gw || x.multipath?.some((n) => n.gateway === gw)),
      );
      if (!found) drift.push(`route ${r.dst}${gw ? ` via ${gw}` : ''} missing in the container`);
    }
    if (p.bridgeAddrs.length > 0 || conf.ipMasq || conf.portMappings.length > 0) {
      const fams = new Set(ours.map((i) => tryParseCidr(i.address)!.family));
      if (fams.has(4) && readSysctl(host, 'net/ipv4/ip_forward') !== '1') drift.push('net.ipv4.ip_forward is off');
      if (fams.has(6) && readSysctl(host, 'net/ipv6/conf/all/forwarding') !== '1') drift.push('net.ipv6.conf.all.forwarding is off');
    }
    const rec = readAttachment(recordKey(req));
    if (!rec) drift.push('no attachment record (netplumb-container cannot find this container)');
    else if (rec.netnsId !== ctr.netnsId) drift.push(`the attachment record names namespace ${rec.netns} (${rec.netnsId}), not CNI_NETNS (${ctr.netnsId})`);
    const fwDrift = await checkContainerRules(firewallSpec(req, conf, ours, hostVeth, c?.mac ?? ctrIf?.mac ?? ''));
    drift.push(...fwDrift.map((d) => `firewall: ${d}`));
  } finally {
    ctr.close();
    host.close();
  }
  if (drift.length > 0) {
    throw new CniError(CNI_ERR.BRIDGE_CHECK_FAILED, `CHECK of ${req.containerId}/${req.ifname} on network "${conf.network}": ${drift.join('; ')}`, {
      object: `${req.containerId}/${req.ifname}`,
    });
  }
}

// ── GC and STATUS ────────────────────────────────────────────────────────────────────────────────────────

async function gc(req: CniRequest): Promise<void> {
  const network = req.name;
  const valid = req.validAttachments ?? [];
  const fault = faultInjector(req);
  const teardown = new Teardown('GC', `network ${network}`, logFailure('GC', `network ${network}`));
  await teardown.step('firewall', () => gcFirewall(network, valid));
  fault('gc-firewall');
  await teardown.step('veth', async () => {
    const keep = new Set(valid.map((a) => hostVethName(a.containerId, a.ifname)));
    const halfMade = await staleHolderVeths(req, keep);
    const h = openHandle();
    try {
      for (const l of await listLinks(h, { kind: 'veth' })) {
        if (l.alias === undefined && halfMade.has(l.name)) {
          await deleteLink(h, l.index).catch(ignoreMissing);
          continue;
        }
        const owner = parseVethAlias(l.alias);
        if (owner?.network !== network || keep.has(l.name)) continue;
        if (l.name !== hostVethName(owner.containerId, owner.ifname)) continue; // an alias cut short, or not ours
        await deleteLink(h, l.index).catch(ignoreMissing);
      }
    } finally {
      h.close();
    }
  });
  fault('gc-veth');
  if (hasIpam(req.config as Json)) await teardown.step('ipam', () => ipamGc(req));
  await teardown.step('records', () => {
    for (const r of staleAttachments(network, 'bridge', valid)) removeAttachment(r);
  });
  teardown.finish();
}

async function status(req: CniRequest): Promise<void> {
  if (hasIpam(req.config as Json)) await ipamStatus(req);
}

export const bridgePlugin: CniPlugin = {
  name: 'netplumb-bridge',
  about: 'netplumb-bridge: Docker-style bridge networking (veth, IPAM, masquerade, published ports, isolation)',
  netns: 'foreign',
  capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
  add,
  del,
  check,
  gc,
  status,
};
