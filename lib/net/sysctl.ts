/**
 * sysctls of a given namespace. /proc/sys/net shows the namespace of the thread that opens a file, so the file
 * is opened inside the handle's namespace (a setns window) and read or written after the window closes.
 * Synchronous, hence the `Sync` names. See docs/NET.md.
 */
import { closeSync, openSync, readSync, writeSync, constants as fsc } from 'node:fs';
import { ERR, NetplumbError } from '../errors.js';
import type { Handle } from './handle.js';

/** `net.ipv4.ip_forward` or `net/ipv4/conf/eth0.100/rp_filter` → the /proc/sys path (dots only split the first form). */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key : key.replaceAll('.', '/');
  if (rel.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new NetplumbError(`invalid sysctl key ${JSON.stringify(key)}`, { code: ERR.INVALID_ARG_VALUE, op: 'sysctl', object: key });
  }
  return `/proc/sys/${rel}`;
}

function openIn(h: Handle, key: string, flags: number): number {
  const path = sysctlPath(key);
  try {
    return h.inNetnsSync(`sysctl ${key}`, () => openSync(path, flags));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined) throw e;
    throw new NetplumbError(`sysctl ${key} in ${h.label}: ${code}`, { code, op: 'sysctl', object: key, cause: e });
  }
}

/** Reads a sysctl of the handle's namespace (`net.ipv4.ip_forward` or `net/ipv4/…`), trimmed. Equivalent to: `ip netns exec NS sysctl -n KEY`. */
export function readSysctlSync(h: Handle, key: string): string {
  const fd = openIn(h, key, fsc.O_RDONLY);
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('utf8', 0, n).trim();
  } finally {
    closeSync(fd);
  }
}

/** Writes a sysctl of the handle's namespace. Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`. */
export function writeSysctlSync(h: Handle, key: string, value: string | number): void {
  const fd = openIn(h, key, fsc.O_WRONLY);
  try {
    writeSync(fd, `${value}\n`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new NetplumbError(`sysctl ${key}=${value} in ${h.label}: ${code}`, { code, op: 'sysctl', object: key, cause: e });
  } finally {
    closeSync(fd);
  }
}

/** One sysctl setting: its key (`net/ipv6/conf/eth0/accept_ra`, or dotted) and value. */
export type SysctlSetting = readonly [key: string, value: string | number];

/**
 * Writes several sysctls of the handle's namespace (`sysctl -w k=v k2=v2`), opening all their files in one
 * setns window rather than one window each. By default the first key that cannot be opened or written
 * throws (after the files opened are closed); with `ignoreErrors` such keys are skipped, as the reference
 * plugins do for settings that may be missing (no IPv6 in the namespace, an interface gone).
 */
export function writeSysctlsSync(h: Handle, settings: readonly SysctlSetting[], opts: { ignoreErrors?: boolean } = {}): void {
  const paths = settings.map(([key]) => sysctlPath(key));
  const opened = h.inNetnsSync('sysctls', () =>
    paths.map((path): number | NodeJS.ErrnoException => {
      try {
        return openSync(path, fsc.O_WRONLY);
      } catch (e) {
        return e as NodeJS.ErrnoException;
      }
    }),
  );
  let failure: NetplumbError | undefined;
  opened.forEach((fd, i) => {
    const [key, value] = settings[i]!;
    const fail = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? 'EIO';
      failure ??= new NetplumbError(`sysctl ${key}=${value} in ${h.label}: ${code}`, { code, op: 'sysctl', object: key, cause: e });
    };
    if (typeof fd !== 'number') return fail(fd);
    try {
      if (failure === undefined || opts.ignoreErrors) writeSync(fd, `${value}\n`);
    } catch (e) {
      fail(e as NodeJS.ErrnoException);
    } finally {
      closeSync(fd);
    }
  });
  if (failure !== undefined && !opts.ignoreErrors) throw failure;
}

const conf = (family: 4 | 6, link: string, key: string) => `net/${family === 4 ? 'ipv4' : 'ipv6'}/conf/${link}/${key}`;
const flag = (on: boolean) => (on ? 1 : 0);

// The per-link setters take the link's name (the sysctl tree is by name), or `all` / `default`.

/** IP forwarding for the whole namespace (`net.ipv4.ip_forward`, or IPv6's `conf/all/forwarding`). Equivalent to: `sysctl -w net.ipv4.ip_forward=1`. */
export function setIpForwardSync(h: Handle, on: boolean, family: 4 | 6 = 4): void {
  writeSysctlSync(h, family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding', flag(on));
}
/** Whether the namespace forwards IPv4 (or IPv6) packets. Equivalent to: `sysctl -n net.ipv4.ip_forward`. */
export function getIpForwardSync(h: Handle, family: 4 | 6 = 4): boolean {
  return readSysctlSync(h, family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding') === '1';
}
/** 0 ignore router advertisements, 1 accept unless forwarding, 2 accept even when forwarding. Equivalent to: `sysctl -w net.ipv6.conf.LINK.accept_ra=N`. */
export const setAcceptRaSync = (h: Handle, link: string, value: 0 | 1 | 2) => writeSysctlSync(h, conf(6, link, 'accept_ra'), value);
/** Turns IPv6 off (or on) on a link. Equivalent to: `sysctl -w net.ipv6.conf.LINK.disable_ipv6=1`. */
export const setDisableIpv6Sync = (h: Handle, link: string, on: boolean) => writeSysctlSync(h, conf(6, link, 'disable_ipv6'), flag(on));
/** Reverse path filtering: 0 off, 1 strict, 2 loose. Equivalent to: `sysctl -w net.ipv4.conf.LINK.rp_filter=N`. */
export const setRpFilterSync = (h: Handle, link: string, value: 0 | 1 | 2) => writeSysctlSync(h, conf(4, link, 'rp_filter'), value);
/** Lets 127/8 be routed on a link (for DNAT to loopback). Equivalent to: `sysctl -w net.ipv4.conf.LINK.route_localnet=1`. */
export const setRouteLocalnetSync = (h: Handle, link: string, on: boolean) => writeSysctlSync(h, conf(4, link, 'route_localnet'), flag(on));
/** Announce address and MAC changes with gratuitous ARP. Equivalent to: `sysctl -w net.ipv4.conf.LINK.arp_notify=1`. */
export const setArpNotifySync = (h: Handle, link: string, on: boolean) => writeSysctlSync(h, conf(4, link, 'arp_notify'), flag(on));
/** Duplicate address detection: 0 off, 1 on, 2 on and disable IPv6 on failure. Equivalent to: `sysctl -w net.ipv6.conf.LINK.accept_dad=N`. */
export const setAcceptDadSync = (h: Handle, link: string, value: 0 | 1 | 2) => writeSysctlSync(h, conf(6, link, 'accept_dad'), value);
/** Create neighbour entries from gratuitous ARP. Equivalent to: `sysctl -w net.ipv4.conf.LINK.arp_accept=1`. */
export const setArpAcceptSync = (h: Handle, link: string, on: boolean) => writeSysctlSync(h, conf(4, link, 'arp_accept'), flag(on));
