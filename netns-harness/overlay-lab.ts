/**
 * A lab for the VXLAN overlay (tests, demo, bench): an underlay bridge in a namespace of its own with a real
 * etcd on it (192.0.2.254), and N hosts (h1…hN, 192.0.2.n/24 on eth0, a port of that bridge), each with an
 * overlay configuration file. Agents are started per host (`startAgent`), containers attached with the
 * network list the agent wrote (`add`: netplumb-overlay through the host's agent).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAgentProcess, type AgentProcess } from './agent.js';
import { execPlugin, type PluginRun } from './cni-runtime.js';
import { etcdServer, type EtcdServer } from './etcd.js';
import { createHost, type Container, type Host } from './holder.js';
import { waitFor } from './wait.js';

const PLUGINS = resolve(dirname(fileURLToPath(import.meta.url)), '../plugins');

export interface OverlayLabHost {
  n: number;
  host: Host;
  /** the overlay configuration file given to `netplumbd --overlay` */
  configPath: string;
  /** the overlay's stateDir on this host (state file, conflist, IPAM store) */
  stateDir: string;
  /** the running agent, once started */
  agent: AgentProcess | undefined;
}

export interface OverlayLab {
  underlay: Host;
  etcd: EtcdServer;
  hosts: OverlayLabHost[];
  /** the overlay's name (the CNI network) */
  name: string;
  /** starts netplumbd with the overlay on `h` and waits (bounded) for its lease; throws with its log if none */
  startAgent(h: OverlayLabHost): Promise<AgentProcess>;
  /** CNI ADD of `ctr` on `h` with the conflist the agent wrote, through the agent */
  add(h: OverlayLabHost, ctr: Container, containerId: string, command?: 'ADD' | 'DEL'): Promise<PluginRun>;
  /** this host's state file */
  state(h: OverlayLabHost): Record<string, any>;
  destroy(): Promise<void>;
}

export async function overlayLab(o: { hosts: number; name?: string; ttlSeconds?: number }): Promise<OverlayLab> {
  const name = o.name ?? 'ovl';
  const dir = mkdtempSync('/run/np-overlay-');
  const underlay = await createHost('underlay');
  await underlay.exec(['ip', 'link', 'add', 'ul', 'type', 'bridge']);
  await underlay.exec(['ip', 'addr', 'add', '192.0.2.254/24', 'dev', 'ul']);
  await underlay.exec(['ip', 'link', 'set', 'ul', 'up']);
  const etcd = etcdServer(underlay, '192.0.2.254');
  await etcd.start();
  const hosts: OverlayLabHost[] = [];
  for (let n = 1; n <= o.hosts; n++) {
    const host = await createHost(`h${n}`);
    // the host's underlay link: a veth whose other end is a port of the underlay bridge
    await host.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `ul${n}`, 'netns', String(underlay.pid)]);
    await host.exec(['ip', 'addr', 'add', `192.0.2.${n}/24`, 'dev', 'eth0']);
    await host.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await underlay.exec(['ip', 'link', 'set', `ul${n}`, 'master', 'ul', 'up']);
    const stateDir = join(dir, `h${n}`);
    const configPath = join(dir, `h${n}.json`);
    const config = {
      name,
      network: '10.244.0.0/16',
      subnetPrefix: 24,
      vni: 1,
      etcd: { endpoints: [etcd.endpoint] },
      underlay: 'eth0',
      node: `h${n}`,
      stateDir,
    };
    writeFileSync(configPath, JSON.stringify(o.ttlSeconds === undefined ? config : { ...config, ttlSeconds: o.ttlSeconds }));
    hosts.push({ n, host, configPath, stateDir, agent: undefined });
  }
  const state = (h: OverlayLabHost) => JSON.parse(readFileSync(join(h.stateDir, `${name}.json`), 'utf8')) as Record<string, any>;
  return {
    underlay,
    etcd,
    hosts,
    name,
    state,
    async startAgent(h) {
      const agent = await startAgentProcess({ socket: join(dir, `h${h.n}.sock`), netns: h.host.netnsPath, args: ['--overlay', h.configPath] });
      h.agent = agent;
      const leased = await waitFor(() => agent.events().some((e) => e.event === 'overlay-leased'), { timeoutMs: 30_000 });
      if (!leased) throw new Error(`h${h.n}'s agent leased no subnet:\n${agent.log()}`);
      return agent;
    },
    add(h, ctr, containerId, command = 'ADD') {
      const list = JSON.parse(readFileSync(join(h.stateDir, `${name}.conflist`), 'utf8'));
      const conf = { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0], dataDir: join(h.stateDir, 'ipam') };
      return execPlugin({
        file: join(PLUGINS, conf.type),
        netns: h.host.netnsPath,
        stdin: JSON.stringify(conf),
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: containerId,
          CNI_NETNS: ctr.netnsPath,
          CNI_IFNAME: 'eth0',
          CNI_PATH: `${PLUGINS}:/usr/lib/cni`,
          NETPLUMB_AGENT_SOCKET: h.agent?.socket ?? '',
        },
        timeoutMs: 60_000,
      });
    },
    async destroy() {
      for (const h of hosts) await h.agent?.stop();
      await etcd.stop();
      for (const h of hosts) await h.host.destroy();
      await underlay.destroy();
    },
  };
}
