/**
 * sysctls of a given namespace. /proc/sys/net shows the namespace of the thread that opens a file, so the file
 * is opened inside the handle's namespace (a setns window) and read or written after the window closes.
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
    return h.inNetns(`sysctl ${key}`, () => openSync(path, flags));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined) throw e;
    throw new NetplumbError(`sysctl ${key} in ${h.label}: ${code}`, { code, op: 'sysctl', object: key, cause: e });
  }
}

export function readSysctl(h: Handle, key: string): string {
  const fd = openIn(h, key, fsc.O_RDONLY);
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.toString('utf8', 0, n).trim();
  } finally {
    closeSync(fd);
  }
}

export function writeSysctl(h: Handle, key: string, value: string | number): void {
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

const conf = (family: 4 | 6, dev: string, key: string) => `net/${family === 4 ? 'ipv4' : 'ipv6'}/conf/${dev}/${key}`;
const flag = (on: boolean) => (on ? 1 : 0);

/** IP forwarding for the whole namespace (`net.ipv4.ip_forward`, or IPv6's `conf/all/forwarding`). */
export function setIpForward(h: Handle, on: boolean, family: 4 | 6 = 4): void {
  writeSysctl(h, family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding', flag(on));
}
export function getIpForward(h: Handle, family: 4 | 6 = 4): boolean {
  return readSysctl(h, family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding') === '1';
}
/** 0 ignore router advertisements, 1 accept unless forwarding, 2 accept even when forwarding. */
export const setAcceptRa = (h: Handle, dev: string, value: 0 | 1 | 2) => writeSysctl(h, conf(6, dev, 'accept_ra'), value);
export const setDisableIpv6 = (h: Handle, dev: string, on: boolean) => writeSysctl(h, conf(6, dev, 'disable_ipv6'), flag(on));
/** 0 off, 1 strict, 2 loose; `dev` may be `all` or `default`. */
export const setRpFilter = (h: Handle, dev: string, value: 0 | 1 | 2) => writeSysctl(h, conf(4, dev, 'rp_filter'), value);
export const setRouteLocalnet = (h: Handle, dev: string, on: boolean) => writeSysctl(h, conf(4, dev, 'route_localnet'), flag(on));
/** Announce address and MAC changes with gratuitous ARP. */
export const setArpNotify = (h: Handle, dev: string, on: boolean) => writeSysctl(h, conf(4, dev, 'arp_notify'), flag(on));
/** Duplicate address detection: 0 off, 1 on, 2 on and disable IPv6 on failure. */
export const setAcceptDad = (h: Handle, dev: string, value: 0 | 1 | 2) => writeSysctl(h, conf(6, dev, 'accept_dad'), value);
/** Create neighbour entries from gratuitous ARP (`arp_accept`). */
export const setArpAccept = (h: Handle, dev: string, on: boolean) => writeSysctl(h, conf(4, dev, 'arp_accept'), flag(on));
