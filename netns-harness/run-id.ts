/**
 * Every process the harness starts carries NETPLUMB_RUN_ID in its environment, so a leak check can find
 * exactly the processes of one run (and not those of a concurrent run on the same machine).
 */
import { randomBytes } from 'node:crypto';

export const RUN_ID_ENV = 'NETPLUMB_RUN_ID';

export function runId(): string {
  let id = process.env[RUN_ID_ENV];
  if (id === undefined || !/^[a-z0-9-]{4,64}$/.test(id)) {
    id = `np-${randomBytes(6).toString('hex')}`;
    process.env[RUN_ID_ENV] = id;
  }
  return id;
}
