/**
 * The agent's log: one JSON object per line on stderr, one line per event (a request answered, a peer
 * refused, the agent starting or stopping), so that journald or any collector can parse it without rules.
 */
export type LogFields = Record<string, string | number | boolean | undefined | null | Record<string, unknown>>;

export type AgentLog = (event: string, fields?: LogFields) => void;

/** A log writing to `out` (default: stderr). */
export function jsonLog(out: (line: string) => void = (l) => process.stderr.write(l)): AgentLog {
  return (event, fields = {}) => {
    out(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
  };
}
