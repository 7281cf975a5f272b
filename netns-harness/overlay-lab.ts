/**
 * A lab for the VXLAN overlay (tests, demo, bench): an underlay bridge in a namespace of its own with a real
 * etcd on it (192.0.2.254 and 2001:db8::fe), and N hosts (h1…hN, 192.0.2.n/24 on eth0, a port of that bridge),
 * each with an overlay configuration file. More hosts join with `addHost`, also with an IPv6-only underlay
 * (2001:db8::n/64). With `tls`, etcd speaks https only and wants client certificates of a throwaway CA
 * (`pki`), which every host's configuration names. Agents are started per host (`startAgent`), containers
 * attached with the network list the agent wrote (`add`: netplumb-overlay through the host's agent).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAgentProcess, type AgentProcess } from './agent.js';
import { execPlugin, type PluginRun } from './cni-runtime.js';
import { etcdServer, type EtcdServer } from './etcd.js';
import { createHost, type Container, type Host } from './holder.js';
import { makeTestPki, type TestPki } from './pki.js';
import { waitFor } from './wait.js';

const PLUGINS = resolve(dirname(fileURLToPath(import.meta.url)), '../plugins');

export interface OverlayLabHost {
  n: number;
  host: Host;
  /** its address on the underlay (eth0): 192.0.2.n, or 2001:db8::n for an IPv6-only host */
  underlayIp: string;
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
  /** the CA and certificates, when made with `tls` */
  pki: TestPki | undefined;
  hosts: OverlayLabHost[];
  /** the directory of configuration files, state directories and sockets */
  dir: string;
  /** the overlay's name (the CNI network) */
  name: string;
  /**
   * One more host on the underlay bridge: `family` 6 gives it an IPv6 address only (no DAD) and points it at
   * etcd's IPv6 endpoint; `overlay` keys override its configuration (another etcd prefix, network, VNI).
   */
  addHost(o?: { family?: 4 | 6; overlay?: Record<string, unknown> }): Promise<OverlayLabHost>;
  /** starts netplumbd with the overlay on `h` and waits (bounded) for its lease; throws with its log if none */
  startAgent(h: OverlayLabHost): Promise<AgentProcess>;
  /** CNI ADD of `ctr` on `h` with the conflist the agent wrote, through the agent */
  add(h: OverlayLabHost, ctr: Container, containerId: string, command?: 'ADD' | 'DEL'): Promise<PluginRun>;
  /** this host's state file */
  state(h: OverlayLabHost): Record<string, any>;
  destroy(): Promise<void>;
}

/** `agentArgs`: more arguments for every host's netplumbd (`--cleanup-grace 0.5`). */
export async function overlayLab(o: { hosts: number; name?: string; ttlSeconds?: number; tls?: boolean; agentArgs?: string[] }): Promise<OverlayLab> {
  const name = o.name ?? 'ovl';
  const dir = mkdtempSync('/run/np-overlay-');
  const underlay = await createHost('underlay');
  await underlay.exec(['ip', 'link', 'add', 'ul', 'type', 'bridge']);
  await underlay.exec(['ip', 'addr', 'add', '192.0.2.254/24', 'dev', 'ul']);
  await underlay.exec(['ip', 'addr', 'add', '2001:db8::fe/64', 'dev', 'ul', 'nodad']);
  await underlay.exec(['ip', 'link', 'set', 'ul', 'up']);
  const pki = o.tls ? await makeTestPki(dir, ['192.0.2.254', '2001:db8::fe']) : undefined;
  const etcd = etcdServer(underlay, ['192.0.2.254', '2001:db8::fe'], pki ? { tls: { server: pki.server, caFile: pki.caFile, client: pki.client } } : {});
  await etcd.start();
  const tlsFiles = pki ? { caFile: pki.caFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile } : {};
  const hosts: OverlayLabHost[] = [];
  const addHost = async (h: { family?: 4 | 6; overlay?: Record<string, unknown> } = {}): Promise<OverlayLabHost> => {
    const n = hosts.length + 1;
    const v6 = h.family === 6;
    const underlayIp = v6 ? `2001:db8::${n.toString(16)}` : `192.0.2.${n}`;
    const host = await createHost(`h${n}`);
    // the host's underlay link: a veth whose other end is a port of the underlay bridge
    await host.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `ul${n}`, 'netns', String(underlay.pid)]);
    await host.exec(['ip', 'addr', 'add', v6 ? `${underlayIp}/64` : `${underlayIp}/24`, 'dev', 'eth0', ...(v6 ? ['nodad'] : [])]);
    await host.exec(['ip', 'link', 'set', 'eth0', 'up']);
    await underlay.exec(['ip', 'link', 'set', `ul${n}`, 'master', 'ul', 'up']);
    const stateDir = join(dir, `h${n}`);
    const configPath = join(dir, `h${n}.json`);
    const etcdConfig = { endpoints: [etcd.endpoints[v6 ? 1 : 0]], ...tlsFiles };
    const config = {
      name,
      network: '10.244.0.0/16',
      subnetPrefix: 24,
      vni: 1,
      underlay: 'eth0',
      node: `h${n}`,
      stateDir,
      ...(o.ttlSeconds === undefined ? {} : { ttlSeconds: o.ttlSeconds }),
      ...h.overlay,
      // etcd keys are merged (another prefix keeps the endpoint and TLS files)
      etcd: { ...etcdConfig, ...(h.overlay?.etcd as object | undefined) },
    };
    writeFileSync(configPath, JSON.stringify(config));
    const added: OverlayLabHost = { n, host, underlayIp, configPath, stateDir, agent: undefined };
    hosts.push(added);
    return added;
  };
  for (let n = 1; n <= o.hosts; n++) await addHost();
  const state = (h: OverlayLabHost) => JSON.parse(readFileSync(join(h.stateDir, `${name}.json`), 'utf8')) as Record<string, any>;
  return {
    underlay,
    etcd,
    pki,
    hosts,
    dir,
    name,
    state,
    addHost,
    async startAgent(h) {
      const agent = await startAgentProcess({
        socket: join(dir, `h${h.n}.sock`),
        netns: h.host.netnsPath,
        args: ['--overlay', h.configPath, ...(o.agentArgs ?? [])],
      });
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
