/**
 * netplumbd, the resident agent: an HTTP/1.1 API on a protected Unix socket that runs the CNI plugins in
 * process for the compiled forwarder (forwarder/netplumb-forward.c). docs/AGENT.md.
 */
export { startAgent, DEFAULT_SOCKET, LIMITS, type Agent, type AgentOptions } from './server.js';
export { AgentStartError, answers } from './socket-path.js';
export { envBlock, parseEnvBlock, ENV_LENGTH_HEADER, EXIT_STATUS_HEADER, STDERR_HEADER } from './cni-endpoint.js';
export { AGENT_PLUGINS } from './plugins.js';
export { jsonLog, type AgentLog } from './log.js';
