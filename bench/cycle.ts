/** One timed ADD+DEL of a fresh container, as the CNI benchmarks run it. */
import type { Host, PluginRun } from '../netns-harness/index.js';
import type { CniRuntime } from '../netns-harness/cni-runtime.js';

export interface TimedCycle {
  add: PluginRun;
  del: PluginRun;
  /** wall-clock ms of each exec */
  tAdd: number;
  tDel: number;
}

/** Creates a container in `host`, ADDs and DELs it through `rt` (each exec timed), destroys it; throws on failure. */
export async function timedCycle(label: string, host: Host, rt: CniRuntime, conf: unknown, containerId: string): Promise<TimedCycle> {
  const ctr = await host.createContainer(containerId);
  const att = { containerId, netns: ctr.netnsPath, ifname: 'eth0' };
  let t = performance.now();
  const add = await rt.exec('ADD', conf, att);
  const tAdd = performance.now() - t;
  if (!add.ok) throw new Error(`${label} ADD: ${add.stdout} ${add.stderr}`);
  t = performance.now();
  const del = await rt.exec('DEL', conf, att);
  const tDel = performance.now() - t;
  if (!del.ok) throw new Error(`${label} DEL: ${del.stdout} ${del.stderr}`);
  await ctr.destroy();
  return { add, del, tAdd, tDel };
}
