/**
 * A throwaway PKI for tests that speak TLS (etcd with `--client-cert-auth`), made with the `openssl` command
 * in a directory of the caller's (the sandbox's tmpfs): a CA, a server certificate for the given IP
 * addresses, a client certificate of that CA, and a client certificate of another CA, which the server must
 * refuse. EC P-256 keys, valid for two days; nothing leaves the directory.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';

export const OPENSSL = '/usr/bin/openssl';

/** A certificate and its key. */
export interface CertFiles {
  certFile: string;
  keyFile: string;
}

export interface TestPki {
  /** the CA that signed `server` and `client` */
  caFile: string;
  /** for the server: SANs are the IP addresses asked for */
  server: CertFiles;
  /** a client certificate of `caFile` */
  client: CertFiles;
  /** another CA, and a client certificate of it: right in form, wrong in trust */
  otherCaFile: string;
  otherClient: CertFiles;
}

const openssl = (args: string[]) => run([OPENSSL, ...args], { timeoutMs: 30_000 });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string): Promise<CertFiles> {
  const c = { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`) };
  await openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    c.keyFile,
    '-out',
    c.certFile,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return c;
}

let serial = 1;

/** A certificate signed by `ca` with the given extensions (`subjectAltName=IP:…`, `extendedKeyUsage=…`). */
async function issue(dir: string, ca: CertFiles, name: string, extensions: string[]): Promise<CertFiles> {
  const c = { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\n${extensions.join('\n')}\n`);
  await openssl(['req', '-new', ...EC, '-keyout', c.keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    String(serial++),
    '-days',
    '2',
    '-out',
    c.certFile,
    '-extfile',
    ext,
  ]);
  return c;
}

/** Makes the PKI in `dir`; the server certificate names `serverIps` (IPv4 or IPv6). */
export async function makeTestPki(dir: string, serverIps: string[]): Promise<TestPki> {
  if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} is missing: apt-get install openssl (scripts/prepare.mjs does)`);
  const ca = await makeCa(dir, 'ca');
  const other = await makeCa(dir, 'other-ca');
  return {
    caFile: ca.certFile,
    // etcd's own JSON gateway dials the server with the server's certificate: under --client-cert-auth
    // that certificate must be good for client authentication too (else every gateway call fails with 503)
    server: await issue(dir, ca, 'server', [`subjectAltName=${serverIps.map((ip) => `IP:${ip}`).join(',')}`, 'extendedKeyUsage=serverAuth,clientAuth']),
    client: await issue(dir, ca, 'client', ['extendedKeyUsage=clientAuth']),
    otherCaFile: other.certFile,
    otherClient: await issue(dir, other, 'other-client', ['extendedKeyUsage=clientAuth']),
  };
}
