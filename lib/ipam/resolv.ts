/**
 * host-local's `resolvConf`: the DNS settings of a resolv.conf file, as a CNI `dns` object.
 * See docs/CNI.md for the rest.
 */
import { closeSync, constants as FS, fstatSync, openSync } from 'node:fs';
import { readUpTo } from '../sys/read.js';
import { configError } from './errors.js';

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export function parseResolvConf(text: string): Dns {
  const dns: Dns = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    switch (f[0]) {
      case 'nameserver':
        (dns.nameservers ??= []).push(f[1]!);
        break;
      case 'domain':
        dns.domain = f[1]!;
        break;
      case 'search':
        (dns.search ??= []).push(...f.slice(1));
        break;
      case 'options':
        (dns.options ??= []).push(...f.slice(1));
        break;
    }
  }
  return dns;
}

const MAX_RESOLV_CONF_BYTES = 65536;

/**
 * Reads and parses a resolv.conf: at most 64 KiB of a regular file (links to one are fine: /etc/resolv.conf
 * often is one). Opened non-blocking and checked before reading, so a FIFO or a device (`/dev/zero`) named by
 * a hostile configuration neither hangs the plugin nor fills its memory. Any failure is a configuration
 * error naming `resolvConf`.
 */
export function readResolvConf(path: string): Dns {
  const bad = (why: string) => configError(`ipam.resolvConf ${JSON.stringify(path)} ${why}`, 'resolvConf');
  if (!path.startsWith('/') || path.includes('\0')) throw bad('is not an absolute path');
  let fd: number;
  try {
    fd = openSync(path, FS.O_RDONLY | FS.O_NONBLOCK | FS.O_NOCTTY);
  } catch (e) {
    throw bad(`cannot be opened (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw bad('is not a regular file');
    return parseResolvConf(readUpTo(fd, MAX_RESOLV_CONF_BYTES).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}
