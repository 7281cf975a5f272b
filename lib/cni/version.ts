/**
 * CNI spec versions: which netplumb speaks, comparison, and what each verb requires.
 * See docs/CNI.md for the rest.
 */
import { CNI_ERR, CniError } from './errors.js';

/** The versions netplumb's plugins accept and answer in (VERSION lists them). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The internal model's version: Results are held in 1.1.0 form and converted on output. */
export const CURRENT_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Parses `x.y.z` (numbers only); undefined if it is not one. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Compares two `x.y.z` versions (-1, 0, 1). Throws on malformed input. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new CniError(CNI_ERR.DECODING_FAILURE, `malformed CNI version: ${JSON.stringify(!pa ? a : b)}`, { object: 'cniVersion' });
  for (let i = 0; i < 3; i++) if (pa[i]! !== pb[i]!) return pa[i]! < pb[i]! ? -1 : 1;
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/** True for the versions whose Result has `ips[].version` and no 1.x-only fields (0.3.0 – 0.4.0). */
export function isLegacyResultVersion(v: string): boolean {
  return compareVersions(v, '1.0.0') < 0;
}

/** The lowest config version each verb needs (the spec's). */
export const MIN_VERSION_FOR: Record<string, string> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};
