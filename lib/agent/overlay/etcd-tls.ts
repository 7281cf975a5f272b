/**
 * The TLS files of an etcd client, as etcdctl (`--cacert --cert --key`) and flannel (`-etcd-cafile
 * -etcd-certfile -etcd-keyfile`) take them: a CA bundle to verify the server against, and a client
 * certificate with its key for etcd's `--client-cert-auth`. Read and checked before anything else happens,
 * so that a wrong path, a file that is not PEM, or a key that does not belong to the certificate is an error
 * naming the key and the file, not a handshake that fails later for reasons nobody can see.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { ERR, NetplumbError } from '../../errors.js';
import { readUpTo } from '../../sys/read.js';

/** The configuration's paths (absolute), each optional: a client certificate needs its key. */
export interface EtcdTlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** The files' contents, as node:https takes them. */
export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** A PEM file bigger than this is not a certificate bundle. */
const MAX_PEM = 1 << 20;

const bad = (key: string, path: string, why: string) =>
  new NetplumbError(`overlay config: etcd.${key} ${path} ${why}`, { code: ERR.INVALID_ARG_VALUE, op: 'readEtcdTls', object: `etcd.${key}` });

function readPem(key: string, path: string): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    if (!fstatSync(fd).isFile()) throw bad(key, path, 'is not a regular file');
    const data = readUpTo(fd, MAX_PEM + 1);
    if (data.length > MAX_PEM) throw bad(key, path, `is larger than ${MAX_PEM} bytes`);
    return data;
  } catch (e) {
    if (e instanceof NetplumbError) throw e;
    throw bad(key, path, `cannot be read: ${(e as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Every certificate of a PEM file; at least one, each one parsed. */
function certificatesOf(key: string, path: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw bad(key, path, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw bad(key, path, `holds a certificate that does not parse: ${(e as Error).message}`);
    }
  });
}

/**
 * Reads and checks the TLS files of an etcd client; undefined when none is named. Refuses (an error naming
 * the key and the path) a file that cannot be read, a CA or certificate file without a parsable PEM
 * certificate, a key that does not parse (or is encrypted), and a key that is not the certificate's.
 */
export function readEtcdTls(files: EtcdTlsFiles): EtcdTls | undefined {
  const out: EtcdTls = {};
  if (files.caFile !== undefined) {
    out.ca = readPem('caFile', files.caFile);
    certificatesOf('caFile', files.caFile, out.ca);
  }
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    out.cert = readPem('certFile', files.certFile);
    const [leaf] = certificatesOf('certFile', files.certFile, out.cert);
    out.key = readPem('keyFile', files.keyFile);
    let key: KeyObject;
    try {
      key = createPrivateKey(out.key);
    } catch (e) {
      throw bad('keyFile', files.keyFile, `is not an unencrypted PEM private key: ${(e as Error).message}`);
    }
    if (!leaf!.checkPrivateKey(key)) throw bad('keyFile', files.keyFile, `is not the key of the certificate in ${files.certFile}`);
  }
  return Object.keys(out).length ? out : undefined;
}
