/**
 * The bridge storm (storm-bridge.test.ts) through netplumbd, with the agent SIGKILLed and restarted at random:
 * the same model, the same oracles, the same end state.
 */
process.env.NETPLUMB_TEST_AGENT = '1';
process.env.NETPLUMB_STORM_AGENT_KILLS = '1';
await import('./storm-bridge.test.js');
