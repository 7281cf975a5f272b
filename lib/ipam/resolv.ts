/** host-local's `resolvConf`: the DNS settings of a resolv.conf file, as a CNI `dns` object. */
import { readFileSync } from 'node:fs';

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

/** Reads and parses a resolv.conf (at most 64 KiB are read). */
export function readResolvConf(path: string): Dns {
  return parseResolvConf(readFileSync(path, 'utf8').slice(0, 65536));
}
