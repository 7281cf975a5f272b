/**
 * netplumb-bridge: Docker's bridge network mode as a CNI plugin, configured like the reference `bridge`.
 *
 * ADD, all or nothing, as steps (lib/modes/steps.ts: each registers its undo, names a timing phase and a fault
 * point): parse → preflight (refuse a repeated ADD or a `bridge` that is no bridge; open the container's
 * namespace) → ipam (before anything exists, so an exhausted range changes nothing) → bridge (created with a
 * fixed MAC if missing, up, accept_ra=0, gateway addresses) → veth (one request: the host end `veth<hash>` up
 * on the bridge, the peer made inside the container's namespace as CNI_IFNAME) → host (port options,
 * accept_ra=0, forwarding) → container (sysctls; up, addresses, routes: lib/cni/configure-iface.ts) → firewall
 * (masquerade, published ports, isolation, spoof check: one nftables transaction, in place before the port
 * forwards a first frame; the kernel brings the port up meanwhile) → port-up → garp → record → result.
 * DEL needs neither the container's namespace nor its addresses: the rules are found by attachment, the host
 * veth by its derived name (and checked by its alias), the IPAM by container ID. It never deletes the bridge.
 * CHECK compares the kernel, the IPAM and nftables with prevResult and the configuration and lists the drift.
 * GC collects IPAM reservations, firewall state, host veths and attachment records of attachments the runtime
 * no longer knows.
 * Every attachment is recorded (lib/modes/state.ts, mode "bridge": the container's namespace path and inode), so
 * that netplumb-container can join a bridge-attached container by its ID (Docker's --net=container:<id>).
 * See docs/BRIDGE.md for the rest.
 */
import { chainResult } from '../cni/chain.js';
import { configureIface, defaultGateways } from '../cni/configure-iface.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import type { CniRequest, GcAttachment } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniInterface, CniIpConfig, CniResult, CniRoute } from '../cni/types.js';
import { CURRENT_VERSION } from '../cni/version.js';
import { canonicalCidr, cidrOverlaps, formatIp, tryParseCidr } from '../addr/ip.js';
import { randomMac } from '../addr/mac.js';
import { ERR } from '../errors.js';
import { addAddress, deleteAddress, listAddresses, type Address } from '../net/addr.js';
import { ensureBridge } from '../net/bridge.js';
import { waitForOperUp } from '../net/events.js';
import { openHandleSync, type Handle } from '../net/handle.js';
import { createLink, deleteLink, findLink, getLink, listLinks, setBridgeNfCall, setBridgePort, setLink, type Link } from '../net/link.js';
import { listRoutes } from '../net/route.js';
import { readSysctlSync, setIpForwardSync, writeSysctlsSync, type SysctlSetting } from '../net/sysctl.js';
import { addContainerRules, checkContainerRules, gcBridgeFirewall, gcFirewall, removeContainerRules, type ContainerFirewall } from '../firewall/index.js';
import { BRIDGE_FIELDS, bridgeError, hasIpam, hostVethName, parseBridgeConf, parseVethAlias, vethAlias, type BridgeConf } from './bridge-config.js';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus } from './ipam.js';
import { attachmentKey, namespaceGone, readAttachment, removeAttachment, staleAttachments, writeAttachment, type AttachmentKey } from './state.js';
import { runSteps, Teardown, type UndoStack } from './steps.js';

/** How long the host end may take to come up (the reference gives up after about 2.5 s). */
const PORT_UP_TIMEOUT_MS = 5000;
/** How long IPv6 duplicate address detection may take when `enabledad` (the reference waits 10 s). */
const DAD_TIMEOUT_MS = 10_000;

type Json = Record<string, unknown>;

const errCode = (e: unknown) => (e as { code?: string } | null)?.code;
const recordKey = (req: Pick<CniRequest, 'containerId' | 'name' | 'ifname'>): AttachmentKey => attachmentKey(req, 'bridge');

// ── addresses and routes from the IPAM result ───────────────────────────────────────────────────────────

interface Plan {
  ips: CniIpConfig[];
  routes: CniRoute[];
  /** `gateway/prefix` per address, to put on the bridge (isGateway) */
  bridgeAddrs: string[];
}

/** The reference's calcGateways: gateways default to the subnet's first address, isDefaultGateway adds default routes. */
function plan(conf: BridgeConf, ipam: CniResult | undefined): Plan {
  const ips = (ipam?.ips ?? []).map((ip) => ({ ...ip }));
  const routes = (ipam?.routes ?? []).map((r) => ({ ...r }));
  const bridgeAddrs: string[] = [];
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
  }
  return { ips, routes, bridgeAddrs };
}

const familiesOf = (ips: readonly CniIpConfig[]) => new Set(ips.map((i) => tryParseCidr(i.address)!.family));

/** Whether the host forwards for this network: it routes for it (gateway), masquerades or publishes ports. */
const needsForwarding = (conf: BridgeConf, p: Plan) => p.bridgeAddrs.length > 0 || conf.ipMasq || conf.portMappings.length > 0;

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
  // icc: false is enforced in the inet forward hook, which sees bridged frames only with nf_call_iptables.
  if (!conf.icc && br.kind === 'bridge' && !br.bridge.nfCall) await setBridgeNfCall(h, br.index, true);
  // We own the routes of this interface (CVE-2020-13401); without IPv6 in the namespace there is nothing to turn off.
  writeSysctlsSync(h, [[`net/ipv6/conf/${conf.bridge}/accept_ra`, 0]], { ignoreErrors: true });
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
            throw bridgeError(
              CNI_ERR.BRIDGE_CONFLICT,
              `bridge ${conf.bridge} already has an IP address (${a.cidr}) different from ${want}; set forceAddress to replace it`,
              conf.bridge,
            );
          }
          await deleteAddress(h, { link: br.index, cidr: a.cidr }).catch((e) => (errCode(e) === 'EADDRNOTAVAIL' ? undefined : Promise.reject(e)));
        }
      }
      try {
        // IPv6 gateways skip DAD: the subnet is ours, and a tentative gateway would drop the first packets.
        await addAddress(h, { link: br.index, cidr: want, ...(w.family === 6 ? { nodad: true } : {}) });
        if (!r.created) {
          undo.push(`remove address ${want} from bridge ${conf.bridge} unless in use`, async () => {
            if (!(await hasPorts(h, br.index))) await deleteAddress(h, { link: br.index, cidr: want }).catch(() => undefined);
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

function firewallSpec(req: CniRequest, conf: BridgeConf, ips: CniIpConfig[], hostVeth: string, mac: string): ContainerFirewall {
  return {
    network: conf.network,
    bridge: conf.bridge,
    isolate: conf.isolate,
    allowBridges: conf.allowBridges,
    icc: conf.icc,
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

// ── ADD: preflight → IPAM → bridge → veth → host side → container side → firewall → port up → announce → record ──

/**
 * What must be refused before anything is touched; opens a handle on the host's namespace and one on the
 * container's (adding them to `open`, which the caller closes): opening the latter fails when the plugin lacks
 * the privilege there (a namespace of another user namespace, rootless).
 */
async function preflight(req: CniRequest, conf: BridgeConf, open: Handle[]): Promise<{ host: Handle; ctr: Handle }> {
  const host = openHandleSync();
  open.push(host);
  const hostVeth = hostVethName(req.containerId, req.ifname);
  // Both looked up at once (one round trip): neither lookup changes anything.
  const [existing, named] = await Promise.all([findLink(host, hostVeth), findLink(host, conf.bridge)]);
  // A repeated ADD (no DEL in between) must fail before the IPAM answers with the attachment's address, or
  // the rollback would release the address the first ADD still uses.
  if (existing) {
    throw bridgeError(
      CNI_ERR.ATTACHMENT_EXISTS,
      `host interface ${hostVeth} already exists: is ${req.containerId}/${req.ifname} attached already? (DEL it first)`,
      hostVeth,
    );
  }
  // A `bridge` naming another kind of link (the uplink, lo) fails later anyway; failing before the IPAM keeps
  // the store untouched (its rollback releases the address but cannot rewind last_reserved_ip).
  if (named && named.kind !== 'bridge') {
    throw bridgeError(
      CNI_ERR.BRIDGE_CONFLICT,
      `"bridge": ${conf.bridge} exists and is not a bridge (kind ${named.infoKind ?? 'device'}); refusing to use it`,
      conf.bridge,
    );
  }
  const ctr = openHandleSync({ path: req.netns });
  open.push(ctr);
  return { host, ctr };
}

/** IPAM ADD (its undo: IPAM DEL); an IPAM that hands out no address is an error. */
async function allocate(req: CniRequest, undo: UndoStack): Promise<CniResult> {
  const ipam = await ipamAdd(req, undo);
  if ((ipam.ips ?? []).length === 0) {
    throw new CniError(CNI_ERR.DELEGATE_FAILED, `IPAM plugin returned no IP address for ${req.containerId}/${req.ifname}`);
  }
  return ipam;
}

/**
 * The veth pair, in one request: the host end `veth<hash>` up on the bridge with the attachment as its alias,
 * the peer made directly inside the container's namespace as CNI_IFNAME. Its undo deletes it (both ends).
 * Returns the host end and the index of the container end.
 */
async function createVeth(
  host: Handle,
  ctr: Handle,
  req: CniRequest,
  conf: BridgeConf,
  bridge: Link,
  mac: string,
  undo: UndoStack,
): Promise<{ veth: Link; peerIndex: number }> {
  const hostVeth = hostVethName(req.containerId, req.ifname);
  const mtu = conf.mtu ? { mtu: conf.mtu } : {};
  let veth: Link;
  try {
    veth = await createLink(host, {
      kind: 'veth',
      name: hostVeth,
      ...mtu,
      master: bridge.index,
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
  const peerIndex = veth.kind === 'veth' && veth.peerIndex !== undefined ? veth.peerIndex : (await getLink(ctr, req.ifname)).index;
  return { veth, peerIndex };
}

/**
 * The host side: bridge port options (hairpin is needed for published ports: a container reaching its own
 * port), accept_ra off on the host end, and forwarding when the host routes or NATs for the network.
 */
async function configureHostSide(host: Handle, conf: BridgeConf, p: Plan, veth: Link): Promise<void> {
  const hairpin = conf.hairpinMode || conf.portMappings.length > 0;
  if (hairpin || conf.portIsolation) await setBridgePort(host, veth.index, { hairpin, ...(conf.portIsolation ? { isolated: true } : {}) });
  writeSysctlsSync(host, [[`net/ipv6/conf/${veth.name}/accept_ra`, 0]], { ignoreErrors: true });
  if (needsForwarding(conf, p)) for (const family of familiesOf(p.ips)) setIpForwardSync(host, true, family);
}

/**
 * The container side: its sysctls (as the reference sets them; failures ignored, as the reference does),
 * then the interface configured from the plan: up, addresses, DAD (if enabled), routes.
 */
async function configureContainerSide(ctr: Handle, req: CniRequest, conf: BridgeConf, p: Plan, index: number): Promise<void> {
  const ifname = req.ifname;
  const sysctls: SysctlSetting[] = [[`net/ipv6/conf/${ifname}/accept_dad`, conf.enabledad ? 1 : 0]];
  if (conf.enabledad) sysctls.push([`net/ipv6/conf/${ifname}/enhanced_dad`, 1]);
  sysctls.push([`net/ipv4/conf/${ifname}/arp_notify`, 1]);
  // The plugin alone configures the container's addresses and routes: a router advertisement another
  // container floods over the bridge must not add a SLAAC address or a default route (CVE-2020-10749's
  // attack, aimed at the neighbours rather than the host).
  sysctls.push([`net/ipv6/conf/${ifname}/accept_ra`, 0]);
  if (familiesOf(p.ips).has(6)) sysctls.push(['net/ipv6/conf/lo/disable_ipv6', 0], [`net/ipv6/conf/${ifname}/disable_ipv6`, 0]);
  writeSysctlsSync(ctr, sysctls, { ignoreErrors: true });
  await configureIface(ctr, index, p, { up: !conf.disableContainerInterface, ...(conf.enabledad ? { settleTimeoutMs: DAD_TIMEOUT_MS } : {}) });
}

/**
 * Waits until the host end forwards (both ends up), as the reference does before answering, and until the
 * kernel's link watch has marked the container's end up too: until then IPv6 holds back its link-local address
 * (addrconf waits for operational up) and `ip link` shows it DOWN. Both usually are by now (a look each).
 */
async function waitPortUp(host: Handle, veth: Link, ctr: Handle, req: CniRequest, peerIndex: number): Promise<void> {
  const timedOut = (what: string, e: unknown) => {
    if (errCode(e) !== ERR.TIMEOUT) throw e;
    throw bridgeError(CNI_ERR.PORT_NOT_UP, `${what} did not come up within ${PORT_UP_TIMEOUT_MS} ms`, veth.name, e);
  };
  await Promise.all([
    waitForOperUp(host, veth.index, { timeoutMs: PORT_UP_TIMEOUT_MS }).catch((e) => timedOut(`bridge port ${veth.name}`, e)),
    waitForOperUp(ctr, peerIndex, { timeoutMs: PORT_UP_TIMEOUT_MS }).catch((e) => timedOut(`${req.ifname} in ${req.netns}`, e)),
  ]);
}

/**
 * Gratuitous ARP for every IPv4 address, now that the port forwards: with arp_notify=1, setting the MAC (to
 * the same value) makes the kernel announce the addresses itself. Cheaper than an AF_PACKET socket, whose
 * close waits for an RCU grace period (~10 ms).
 */
async function announce(ctr: Handle, index: number, mac: string): Promise<void> {
  await setLink(ctr, index, { mac });
}

/** The attachment's nftables rules in one transaction; its undo removes them. */
async function addFirewall(req: CniRequest, conf: BridgeConf, p: Plan, veth: Link, mac: string, undo: UndoStack): Promise<void> {
  try {
    await addContainerRules(firewallSpec(req, conf, p.ips, veth.name, mac));
  } catch (e) {
    if (errCode(e) === ERR.HOST_PORT_IN_USE) throw bridgeError(CNI_ERR.HOST_PORT_IN_USE, (e as Error).message, (e as { object?: string }).object, e);
    if (errCode(e)?.startsWith('ERR_INVALID_') && (e as { op?: string }).op === 'firewall')
      throw invalidConfig((e as Error).message, (e as { object?: string }).object, e);
    throw e;
  }
  undo.push('remove firewall rules', () => removeContainerRules({ containerId: req.containerId, ifname: req.ifname, network: conf.network }));
}

/** The attachment record, last, so that a record always stands for a complete attachment: netplumb-container trusts it. */
function record(req: CniRequest, ctr: Handle, undo: UndoStack): void {
  writeAttachment({ ...recordKey(req), netns: req.netns, netnsId: ctr.netnsId });
  undo.push('forget the attachment record', () => removeAttachment(recordKey(req)));
}

/** The Result: bridge, host veth, container interface, the plan's addresses and routes, chained after prevResult. */
async function resultOf(
  req: CniRequest,
  conf: BridgeConf,
  p: Plan,
  ipam: CniResult | undefined,
  host: Handle,
  bridge: { link: Link; created: boolean },
  veth: Link,
  mac: string,
): Promise<CniResult> {
  // The bridge's MAC may have changed as our port joined if someone else created it without a fixed one.
  const brMac = bridge.created ? bridge.link.mac : (await getLink(host, bridge.link.index)).mac;
  const ctrIf: CniInterface = { name: req.ifname, mac, sandbox: req.netns };
  if (conf.mtu) ctrIf.mtu = conf.mtu;
  const ours: CniResult = {
    cniVersion: CURRENT_VERSION,
    interfaces: [{ name: conf.bridge, ...(brMac ? { mac: brMac } : {}) }, { name: veth.name, ...(veth.mac ? { mac: veth.mac } : {}) }, ctrIf],
    ips: p.ips.map((ip) => ({ ...ip, interface: 2 })),
    routes: p.routes,
  };
  const dns = conf.dns ?? ipam?.dns;
  if (dns !== undefined) ours.dns = dns;
  return chainResult(req.prevResult, ours);
}

async function add(req: CniRequest): Promise<CniResult> {
  const open: Handle[] = []; // closed last: the undos use them
  try {
    return await runSteps(req, async (step, undo) => {
      const conf = await step('parse', () => parseBridgeConf(req));
      const { host, ctr } = await step('preflight', () => preflight(req, conf, open));
      const ipam = conf.hasIpam ? await step('ipam', () => allocate(req, undo)) : undefined;
      const p = plan(conf, ipam);
      const bridge = await step('bridge', () => setupBridge(host, conf, p.bridgeAddrs, undo));
      const mac = conf.mac ?? randomMac();
      const { veth, peerIndex } = await step('veth', () => createVeth(host, ctr, req, conf, bridge.link, mac, undo));
      await step('host', () => configureHostSide(host, conf, p, veth));
      await step('container', () => configureContainerSide(ctr, req, conf, p, peerIndex));
      // The rules (the spoof check among them) stand before the port forwards a first frame, and the kernel's
      // link watch brings the port up while the transaction runs, so the wait below is mostly over already.
      await step('firewall', () => addFirewall(req, conf, p, veth, mac, undo));
      // A container interface left down (disableContainerInterface) neither comes up nor announces anything.
      const live = !conf.disableContainerInterface;
      await step('port-up', async () => live && (await waitPortUp(host, veth, ctr, req, peerIndex)));
      await step('garp', async () => live && familiesOf(p.ips).has(4) && (await announce(ctr, peerIndex, mac)));
      await step('record', () => record(req, ctr, undo));
      return step('result', () => resultOf(req, conf, p, ipam, host, bridge, veth, mac));
    });
  } finally {
    for (const h of open.reverse()) h.close();
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
  const [{ storeRef }, { holders }] = await Promise.all([import('./host-local.js'), import('../ipam/allocator.js')]);
  const names = holders(storeRef(req)).map((a) => hostVethName(a.containerId, a.ifname));
  return new Set(names.filter((n) => !keep.has(n)));
}

/** Deletes the attachment's host veth, if it is there and is ours (deleteHostVeth). */
async function removeHostVeth(network: string, containerId: string, ifname: string): Promise<void> {
  const h = openHandleSync();
  try {
    await deleteHostVeth(h, network, containerId, ifname);
  } finally {
    h.close();
  }
}

async function del(req: CniRequest): Promise<void> {
  const network = req.name;
  const t = new Teardown(`netplumb-bridge: DEL ${req.containerId}/${req.ifname}`, req, 'del-');
  // Rules first (plugins#810: they go even without a namespace), then the veth, then the addresses, so an
  // address is never handed out again while the old interface or its rules still exist.
  await t.step('firewall', () => removeContainerRules({ containerId: req.containerId, ifname: req.ifname, network }));
  await t.step('veth', () => removeHostVeth(network, req.containerId, req.ifname));
  await t.step('ipam', () => hasIpam(req.config as Json) && ipamDel(req));
  await t.step('record', () => removeAttachment(recordKey(req)));
  t.finish();
}

// ── CHECK ────────────────────────────────────────────────────────────────────────────────────────────────

/** What prevResult says this plugin made: the bridge, the host veth, the container interface and its addresses. */
interface Expected {
  hostVeth: string;
  bridge: CniInterface | undefined;
  veth: CniInterface | undefined;
  ctr: CniInterface | undefined;
  /** prevResult's addresses of the container interface */
  ips: CniIpConfig[];
  /** what prevResult lacks */
  missing: string[];
}

function expected(req: CniRequest, conf: BridgeConf, prev: CniResult): Expected {
  const ifs = prev.interfaces ?? [];
  const hostVeth = hostVethName(req.containerId, req.ifname);
  const ctrIndex = ifs.findIndex((i) => i.name === req.ifname && i.sandbox === req.netns);
  const e: Expected = {
    hostVeth,
    bridge: ifs.find((i) => i.name === conf.bridge && !i.sandbox),
    ctr: ifs[ctrIndex],
    veth: ifs.find((i) => i.name === hostVeth && !i.sandbox),
    ips: (prev.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === ctrIndex),
    missing: [],
  };
  if (!e.bridge) e.missing.push(`prevResult has no interface for bridge ${conf.bridge}`);
  if (!e.ctr) e.missing.push(`prevResult has no interface ${req.ifname} in sandbox ${req.netns}`);
  if (!e.veth) e.missing.push(`prevResult has no host interface ${hostVeth}`);
  if (conf.hasIpam && e.ips.length === 0) e.missing.push(`prevResult has no address for ${req.ifname}`);
  return e;
}

const onOff = (b: boolean | undefined) => (b ? 'on' : 'off');

function bridgeDrift(conf: BridgeConf, br: Link | undefined, want: CniInterface | undefined): string[] {
  if (!br) return [`bridge ${conf.bridge} not found`];
  const drift: string[] = [];
  if (br.kind !== 'bridge') drift.push(`${conf.bridge} is not a bridge (kind ${br.infoKind ?? 'device'})`);
  if (!br.up) drift.push(`bridge ${conf.bridge} is down`);
  if (br.promisc !== conf.promiscMode) drift.push(`bridge ${conf.bridge} promiscuous mode is ${onOff(br.promisc)}, configured ${onOff(conf.promiscMode)}`);
  if (want?.mac && want.mac !== br.mac) drift.push(`bridge ${conf.bridge} MAC is ${br.mac}, prevResult says ${want.mac}`);
  if (!conf.icc && br.kind === 'bridge' && !br.bridge.nfCall) drift.push(`bridge ${conf.bridge} has nf_call_iptables off, which icc: false needs`);
  return drift;
}

function containerIfDrift(req: CniRequest, conf: BridgeConf, c: Link | undefined, want: CniInterface | undefined): string[] {
  if (!c) return [`interface ${req.ifname} not found in ${req.netns}`];
  const drift: string[] = [];
  if (c.kind !== 'veth') drift.push(`${req.ifname} in the container is not a veth (kind ${c.infoKind ?? 'device'})`);
  if (!conf.disableContainerInterface && !c.up) drift.push(`${req.ifname} in the container is down`);
  if (want?.mac && want.mac !== c.mac) drift.push(`${req.ifname} MAC is ${c.mac}, prevResult says ${want.mac}`);
  if (conf.mtu && c.mtu !== conf.mtu) drift.push(`${req.ifname} MTU is ${c.mtu}, configured ${conf.mtu}`);
  return drift;
}

function hostVethDrift(req: CniRequest, conf: BridgeConf, v: Link | undefined, br: Link | undefined, c: Link | undefined, want: Expected): string[] {
  const name = want.hostVeth;
  if (!v) return [`host interface ${name} not found`];
  const drift: string[] = [];
  if (v.kind !== 'veth') drift.push(`${name} is not a veth`);
  if (br && v.masterIndex !== br.index) drift.push(`${name} is not a port of bridge ${conf.bridge}`);
  if (c && v.kind === 'veth' && v.peerIndex !== c.index) drift.push(`${name} is not the peer of ${req.ifname} in the container`);
  if (want.veth?.mac && want.veth.mac !== v.mac) drift.push(`${name} MAC is ${v.mac}, prevResult says ${want.veth.mac}`);
  const hairpin = conf.hairpinMode || conf.portMappings.length > 0;
  if (v.bridgePort && v.bridgePort.hairpin !== hairpin) drift.push(`${name} hairpin mode is ${onOff(v.bridgePort.hairpin)}, expected ${onOff(hairpin)}`);
  if (v.bridgePort && v.bridgePort.isolated !== conf.portIsolation)
    drift.push(`${name} port isolation is ${onOff(v.bridgePort.isolated)}, configured ${onOff(conf.portIsolation)}`);
  if (!conf.disableContainerInterface && v.operstate !== 'up') drift.push(`${name} is ${v.operstate}, not up`);
  return drift;
}

/** prevResult's addresses on the container interface, and its routes in the container. */
async function addressAndRouteDrift(ctr: Handle, req: CniRequest, c: Link | undefined, ips: CniIpConfig[], routes: readonly CniRoute[]): Promise<string[]> {
  const drift: string[] = [];
  const addrs: Address[] = c ? await listAddresses(ctr, { link: c.index }) : [];
  for (const ip of ips) {
    if (!addrs.some((a) => a.cidr === canonicalCidr(ip.address))) drift.push(`address ${ip.address} missing from ${req.ifname}`);
  }
  const have = await listRoutes(ctr, { table: 'all' });
  const gateways = defaultGateways(ips);
  for (const r of routes) {
    const cidr = tryParseCidr(r.dst);
    if (!cidr) continue;
    const dst = cidr.prefix === 0 ? 'default' : canonicalCidr(r.dst);
    const gw = r.gw ?? gateways[cidr.family];
    const table = r.table ?? 254;
    const found = have.some(
      (x) =>
        x.family === cidr.family && x.dst === dst && x.table === table && (gw === undefined || x.gateway === gw || x.multipath?.some((n) => n.gateway === gw)),
    );
    if (!found) drift.push(`route ${r.dst}${gw ? ` via ${gw}` : ''} missing in the container`);
  }
  return drift;
}

function forwardingDrift(host: Handle, conf: BridgeConf, ips: CniIpConfig[]): string[] {
  const p = plan(conf, { cniVersion: CURRENT_VERSION, ips });
  if (!needsForwarding(conf, p)) return [];
  const families = familiesOf(ips);
  const drift: string[] = [];
  if (families.has(4) && readSysctlSync(host, 'net/ipv4/ip_forward') !== '1') drift.push('net.ipv4.ip_forward is off');
  if (families.has(6) && readSysctlSync(host, 'net/ipv6/conf/all/forwarding') !== '1') drift.push('net.ipv6.conf.all.forwarding is off');
  return drift;
}

function recordDrift(req: CniRequest, ctr: Handle): string[] {
  const rec = readAttachment(recordKey(req));
  if (!rec) return ['no attachment record (netplumb-container cannot find this container)'];
  if (rec.netnsId !== ctr.netnsId) return [`the attachment record names namespace ${rec.netns} (${rec.netnsId}), not CNI_NETNS (${ctr.netnsId})`];
  return [];
}

async function check(req: CniRequest): Promise<void> {
  const conf = parseBridgeConf(req);
  const prev = req.prevResult;
  if (prev === undefined) throw invalidConfig('CHECK needs prevResult (the Result of ADD)', 'prevResult');
  if (conf.hasIpam) await ipamCheck(req);
  const want = expected(req, conf, prev);
  const drift = [...want.missing];
  const host = openHandleSync();
  const ctr = openHandleSync({ path: req.netns });
  try {
    const br = await findLink(host, conf.bridge);
    const c = await findLink(ctr, req.ifname);
    const v = await findLink(host, want.hostVeth);
    drift.push(
      ...bridgeDrift(conf, br, want.bridge),
      ...containerIfDrift(req, conf, c, want.ctr),
      ...hostVethDrift(req, conf, v, br, c, want),
      ...(await addressAndRouteDrift(ctr, req, c, want.ips, prev.routes ?? [])),
      ...forwardingDrift(host, conf, want.ips),
      ...recordDrift(req, ctr),
      ...(await checkContainerRules(firewallSpec(req, conf, want.ips, want.hostVeth, c?.mac ?? want.ctr?.mac ?? ''))).map((d) => `firewall: ${d}`),
    );
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

/**
 * Deletes this network's host veths whose attachment is not valid: those whose alias names such an
 * attachment, and those left without an alias by a killed ADD (`halfMade`, by their derived names).
 */
async function gcHostVeths(network: string, keep: Set<string>, halfMade: Set<string>): Promise<void> {
  const h = openHandleSync();
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
}

/**
 * The runtime's valid attachments less those whose recorded namespace is gone: dead whatever the runtime
 * says (containerd's `ctr run --cni -d` never sends DEL), so GC reclaims their rules, lease and record.
 */
function liveAttachments(network: string, valid: readonly GcAttachment[]): GcAttachment[] {
  return valid.filter((a) => {
    const r = readAttachment(attachmentKey({ containerId: a.containerId, name: network, ifname: a.ifname }, 'bridge'));
    return r === undefined || !namespaceGone(r);
  });
}

async function gc(req: CniRequest): Promise<void> {
  const network = req.name;
  const given = req.validAttachments ?? [];
  const valid = liveAttachments(network, given);
  const t = new Teardown(`netplumb-bridge: GC ${network}`, req, 'gc-');
  await t.step('firewall', async () => {
    await gcFirewall(network, valid);
    // isolation state of bridges deleted since (by anyone): nothing else would ever remove it
    await gcBridgeFirewall(async () => {
      const h = openHandleSync();
      try {
        return new Set((await listLinks(h, { kind: 'bridge' })).map((l) => l.name));
      } finally {
        h.close();
      }
    });
  });
  await t.step('veth', async () => {
    const keep = new Set(valid.map((a) => hostVethName(a.containerId, a.ifname)));
    await gcHostVeths(network, keep, await staleHolderVeths(req, keep));
  });
  await t.step('ipam', async () => {
    if (!hasIpam(req.config as Json)) return;
    // the IPAM plugin gets the same list, less the dead attachments
    const stdin =
      valid.length === given.length
        ? undefined
        : JSON.stringify({ ...req.config, 'cni.dev/valid-attachments': valid.map((a) => ({ containerID: a.containerId, ifname: a.ifname })) });
    await ipamGc(req, stdin === undefined ? undefined : { stdin });
  });
  await t.step('record', () => {
    for (const r of staleAttachments(network, 'bridge', valid)) removeAttachment(r);
  });
  t.finish();
}

async function status(req: CniRequest): Promise<void> {
  if (hasIpam(req.config as Json)) await ipamStatus(req);
}

export const bridgePlugin: CniPlugin = {
  name: 'netplumb-bridge',
  about: 'netplumb-bridge: Docker-style bridge networking (veth, IPAM, masquerade, published ports, isolation)',
  netns: 'foreign',
  capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN'],
  fields: BRIDGE_FIELDS,
  add,
  del,
  check,
  gc,
  status,
};
