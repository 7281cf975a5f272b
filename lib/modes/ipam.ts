/**
 * IPAM for the main plugins: every verb delegated to the plugin named by `ipam.type` (lib/cni/delegate.ts:
 * executed from CNI_PATH), except netplumb-host-local, which runs in process (lib/modes/host-local.ts: same
 * code as its executable, no exec). ADD registers IPAM DEL as its undo (lib/modes/steps.ts), so a later
 * failure of the ADD gives the addresses back.
 */
import { delegate, validatePluginType, type DelegateOptions, type InProcessPlugins } from '../cni/delegate.js';
import { CNI_ERR, CniError, invalidConfig } from '../cni/errors.js';
import type { CniCommand } from '../cni/env.js';
import type { CniRequest } from '../cni/request.js';
import type { CniResult } from '../cni/types.js';
import type { UndoStack } from './steps.js';

/** The IPAM type served in process instead of by exec. */
export const HOST_LOCAL_TYPE = 'netplumb-host-local';

/** The IPAM plugins served in process: netplumb's own, loaded only when a request names it. */
const IN_PROCESS: InProcessPlugins = {
  [HOST_LOCAL_TYPE]: async () => (await import('./host-local.js')).hostLocal,
};

/** `ipam.type` of the request's config, validated (error 7 if missing or not a plain plugin name). */
export function ipamType(req: CniRequest): string {
  const ipam = req.config.ipam;
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam)) throw invalidConfig("network config has no 'ipam' object", 'ipam');
  return validatePluginType(ipam.type, 'ipam.type');
}

/** Delegates `command` to the configured IPAM plugin. */
export function ipamExec(command: CniCommand, req: CniRequest, opts?: DelegateOptions): Promise<CniResult | undefined> {
  return delegate(ipamType(req), command, req, { plugins: IN_PROCESS, ...opts });
}

/**
 * IPAM ADD, registering IPAM DEL on `undo` so that a later failure of the ADD gives the addresses back.
 * The Result is the IPAM plugin's, in the 1.1.0 model (no interfaces; the caller sets `ips[].interface`).
 */
export async function ipamAdd(req: CniRequest, undo?: UndoStack, opts?: DelegateOptions): Promise<CniResult> {
  const result = await ipamExec('ADD', req, opts);
  undo?.push(`IPAM DEL (${ipamType(req)})`, () => ipamExec('DEL', req, opts));
  if (result === undefined) throw new CniError(CNI_ERR.DELEGATE_FAILED, `IPAM plugin ${ipamType(req)} returned no Result`);
  return result;
}

/** IPAM DEL (idempotent by the spec; the caller runs it even when the container is gone). */
export async function ipamDel(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('DEL', req, opts);
}

/** IPAM CHECK: the IPAM plugin's own view of the attachment. */
export async function ipamCheck(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('CHECK', req, opts);
}

/** IPAM GC with the request's valid attachments. */
export async function ipamGc(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('GC', req, opts);
}

/** IPAM STATUS: whether the IPAM plugin can serve an ADD. */
export async function ipamStatus(req: CniRequest, opts?: DelegateOptions): Promise<void> {
  await ipamExec('STATUS', req, opts);
}
