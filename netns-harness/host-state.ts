/**
 * What a sandbox takes from the machine it runs on, and how the harness keeps tests independent of it.
 *
 * - Mounts: the sandbox starts with a private copy of the machine's mount table. Mounts the machine has under
 *   /run (podman's and `ip netns`'s shared /run/netns, containerd's, Docker's) are detached before the
 *   sandbox's own tmpfs goes there, so a test sees one mount per path, whatever the machine's `/` propagation.
 * - IPv4 settings: a new network namespace copies `net.ipv4.conf.{all,default}` and `ip_forward` from the
 *   machine's own (`net.core.devconf_inherit_init_net=0`, the default), so on a host where Docker or podman
 *   ran, every namespace starts with forwarding on. A test that needs a value sets it in its own namespaces.
 *
 * To prove that without changing the machine, NETPLUMB_TEST_HOST_IP_FORWARD=1 makes the harness play such a
 * machine: the sandbox's namespace and every host and container it makes start with `ip_forward=1`
 * (test/outer/host-state.test.ts runs the files that care about the host this way).
 */
import { readFileSync } from 'node:fs';
import { MNT_DETACH, umount2 } from '../lib/sys/libc.js';
import { run } from './exec.js';

export const HOST_IP_FORWARD_ENV = 'NETPLUMB_TEST_HOST_IP_FORWARD';

/** The mount points at or under `dir` in this mount namespace, in mountinfo order (the visible one last). */
export function mountPointsUnder(dir: string): string[] {
  return (
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p): p is string => p !== undefined)
      // mountinfo escapes space, tab, newline and backslash as octal
      .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((p) => p === dir || p.startsWith(`${dir}/`))
  );
}

/**
 * Detaches every mount at or under `dir` (shallowest first; a lazy detach takes the mounts below along).
 * Mounts a user namespace may not remove (locked by the kernel) stay; the caller mounts over them anyway.
 * Only ever called in the sandbox's private mount namespace.
 */
export function detachMountsUnder(dir: string): void {
  for (let i = 0; i < 256; i++) {
    const points = mountPointsUnder(dir).sort((a, b) => a.length - b.length);
    if (points.length === 0) return;
    try {
      umount2(points[0]!, MNT_DETACH);
    } catch {
      return;
    }
  }
}

/** True when the harness plays a machine with `ip_forward=1` (see the file comment). */
export function emulatesHostIpForward(): boolean {
  return process.env[HOST_IP_FORWARD_ENV] === '1';
}

/**
 * Gives a namespace the IPv4 settings it would have inherited from the emulated machine. `netns` is a
 * namespace file; without it, the caller's own namespace.
 */
export async function applyHostState(netns?: string): Promise<void> {
  if (!emulatesHostIpForward()) return;
  await run(['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { netns });
}
