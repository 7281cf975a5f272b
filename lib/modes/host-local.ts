/**
 * netplumb-host-local: lib/ipam behind the CNI contract. The same object serves the executable
 * (plugins/netplumb-host-local.ts → runPlugin) and the in-process fast path of the modes' IPAM delegation
 * (lib/modes/ipam.ts), so both behave identically.
 *
 * ADD allocates one address per range set; DEL releases the attachment's addresses (needing only the
 * network name and dataDir, so a config whose ranges changed or broke still releases); CHECK verifies that
 * the attachment holds an address in every range set and every prevResult address of its ranges; GC
 * releases everything not held by a valid attachment; STATUS reports an exhausted range set (error 50).
 * See docs/CNI.md for the rest.
 */
import { allocate, gc, lookup, release, status } from '../ipam/allocator.js';
import { DEFAULT_DATA_DIR, parseIpamConfig, type IpamConfig } from '../ipam/config.js';
import { formatIp, tryParseCidr, tryParseIp } from '../addr/ip.js';
import { rangeFor } from '../ipam/range.js';
import { readResolvConf } from '../ipam/resolv.js';
import { decodeNetConf, ROUTE_FIELDS, type FieldTable } from '../cni/decode.js';
import { cniArgsValues } from '../cni/env.js';
import { CNI_ERR, CniError, invalidConfig, invalidEnv } from '../cni/errors.js';
import type { CniRequest } from '../cni/request.js';
import type { CniPlugin } from '../cni/skeleton.js';
import type { CniResult } from '../cni/types.js';
import { CURRENT_VERSION } from '../cni/version.js';

const RANGE_FIELDS: FieldTable = { subnet: 'string', rangeStart: 'string', rangeEnd: 'string', gateway: 'string' };
const RANGE_SETS = { list: { list: { fields: RANGE_FIELDS } } } as const;

/** host-local's fields (Go `allocator.Net`, `IPAMConfig` with its embedded `Range`, `IPAMArgs`). */
export const HOST_LOCAL_FIELDS: FieldTable = {
  ipam: {
    fields: { ...RANGE_FIELDS, type: 'string', routes: { list: { fields: ROUTE_FIELDS } }, dataDir: 'string', resolvConf: 'string', ranges: RANGE_SETS },
  },
  runtimeConfig: { fields: { ipRanges: RANGE_SETS, ips: { list: 'string' } } },
  args: { fields: { cni: { fields: { ips: { list: 'string' } } } } },
};

function ipamConfig(req: CniRequest, withArgs = true): IpamConfig {
  let envIp: string | undefined;
  if (withArgs) {
    envIp = cniArgsValues(req.args, ['IP']).get('IP');
    if (envIp !== undefined && tryParseIp(envIp) === undefined) {
      throw invalidEnv(['CNI_ARGS'], `CNI_ARGS: IP=${envIp} is not an IP address`);
    }
  }
  return parseIpamConfig(req.config, { envIp });
}

/** Where the store is, from the config alone (for DEL and GC, which must work even if ranges are broken). */
export function storeRef(req: CniRequest): { dataDir: string; name: string } {
  // decoded again: a plugin that delegates to host-local (the bridge's GC) did not declare host-local's fields
  const ipam = decodeNetConf(req.config, HOST_LOCAL_FIELDS).ipam as CniRequest['config']['ipam'];
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) throw invalidConfig("IPAM config missing 'ipam' key", 'ipam');
  const d = ipam.dataDir;
  const dataDir = d === undefined || d === null || d === '' ? DEFAULT_DATA_DIR : d;
  if (typeof dataDir !== 'string' || !dataDir.startsWith('/') || dataDir.includes('\0')) {
    throw invalidConfig(`ipam.dataDir must be an absolute path, not ${JSON.stringify(d)}`, 'dataDir');
  }
  return { dataDir, name: req.name };
}

export const hostLocal: CniPlugin = {
  name: 'netplumb-host-local',
  about: 'netplumb-host-local: IPAM compatible with host-local (config and store), with GC and STATUS',
  fields: HOST_LOCAL_FIELDS,

  async add(req): Promise<CniResult> {
    const conf = ipamConfig(req);
    const dns = conf.resolvConf !== undefined ? readResolvConf(conf.resolvConf) : undefined;
    const ips = await allocate(conf, { containerId: req.containerId, ifname: req.ifname });
    const result: CniResult = {
      cniVersion: CURRENT_VERSION,
      ips: ips.map((a) => ({ address: a.cidr, gateway: formatIp(a.gateway) })),
    };
    if (conf.routes.length > 0) result.routes = conf.routes.map((r) => ({ ...r }));
    if (dns !== undefined) result.dns = dns;
    return result;
  },

  async del(req): Promise<void> {
    await release(storeRef(req), { containerId: req.containerId, ifname: req.ifname });
  },

  async check(req): Promise<void> {
    const conf = ipamConfig(req, false);
    const who = `${req.containerId}/${req.ifname}`;
    const held = (await lookup(conf, { containerId: req.containerId, ifname: req.ifname })).map((n) => tryParseIp(n)!);
    conf.rangeSets.forEach((set, i) => {
      if (!held.some((ip) => rangeFor(set, ip))) {
        throw new CniError(CNI_ERR.IPAM_NOT_ALLOCATED, `${who} holds no address of range set ${i} of network "${conf.name}"`, {
          object: who,
        });
      }
    });
    for (const ip of req.prevResult?.ips ?? []) {
      const c = tryParseCidr(ip.address);
      if (c === undefined) continue;
      const addr = { family: c.family, value: c.ip };
      if (!conf.rangeSets.some((set) => rangeFor(set, addr))) continue;
      if (!held.some((h) => h.family === addr.family && h.value === addr.value)) {
        throw new CniError(CNI_ERR.IPAM_NOT_ALLOCATED, `${formatIp(addr)} of prevResult is not reserved for ${who} in network "${conf.name}"`, {
          object: formatIp(addr),
        });
      }
    }
  },

  async gc(req): Promise<void> {
    await gc(storeRef(req), req.validAttachments ?? []);
  },

  async status(req): Promise<void> {
    const conf = ipamConfig(req, false);
    let sets;
    try {
      sets = await status(conf);
    } catch (e) {
      if (e instanceof CniError || (e as { code?: string }).code?.startsWith('ERR_IPAM_')) throw e;
      throw new CniError(CNI_ERR.NOT_AVAILABLE, `ipam store of network "${conf.name}" is not usable: ${(e as Error).message}`, { cause: e });
    }
    for (const s of sets) {
      if (s.used >= s.size) {
        throw new CniError(
          CNI_ERR.NOT_AVAILABLE,
          `range set ${s.rangeSet} (${s.text}) of network "${conf.name}" is exhausted: ${s.used} of ${s.size} addresses allocated`,
          {
            object: conf.name,
          },
        );
      }
    }
  },
};
