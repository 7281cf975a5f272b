export { sandboxed, inSandbox, assertSandbox, spawnSandboxed, sandboxArgv, SANDBOX_ENV, SANDBOX_PENDING, type SandboxOptions } from './sandbox.js';
export { Host, Container, NetnsHolder, createHost, destroyAll, waitForExec, type HolderOptions } from './holder.js';
export { HOST_IP_FORWARD_ENV, emulatesHostIpForward } from './host-state.js';
export { run, ipJson, ipJsonBatch, inNetns, operstateCatchingUp, RunError, type RunOptions, type RunResult } from './exec.js';
export {
  ping,
  tcpSend,
  tcpRoundTrip,
  startEchoServer,
  startUdpServer,
  captureFrames,
  udpSend,
  echoHelper,
  type PingResult,
  type ClientNetns,
  type EchoResult,
  type EchoServer,
  type UdpServer,
  type FrameCapture,
} from './connectivity.js';
export { ethernetFrame, arpFrame, udpFrame, icmpv6Frame, routerAdvertFrame, sendRawFrames, vlanTagged } from './frames.js';
export { takeSnapshot, diffSnapshots, taggedProcesses, type Snapshot } from './snapshot.js';
export { runId, RUN_ID_ENV } from './run-id.js';
export {
  CniRuntime,
  CniPluginError,
  execPlugin,
  must,
  type CniCommand,
  type Attachment,
  type PluginRun,
  type PluginExec,
  type ExecOptions,
  type NetworkConfigList,
  type CniRuntimeOptions,
} from './cni-runtime.js';
export { waitFor, type WaitOptions } from './wait.js';
export { startAgentProcess, agentSocketFor, runningAgent, agentGet, NETPLUMBD, TEST_AGENT_ENV, type AgentProcess, type AgentProcessOptions } from './agent.js';
export { etcdServer, ETCD, type EtcdServer, type EtcdServerTls } from './etcd.js';
export { makeTestPki, OPENSSL, type TestPki, type CertFiles } from './pki.js';
export { overlayLab, type OverlayLab, type OverlayLabHost } from './overlay-lab.js';
