/**
 * The overlay as netplumbd runs it: started in the background, and started again (with a bounded backoff)
 * while the subnet source cannot be reached or the underlay is not ready, so that the agent serves its other
 * plugins meanwhile. A configuration that does not parse is reported once and not retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentLog } from '../log.js';
import { parseOverlayConfig } from './config.js';
import { readEtcdTls } from './etcd-tls.js';
import { startOverlay, type Overlay } from './index.js';

export interface RunningOverlay {
  /** the overlay once started */
  current(): Overlay | undefined;
  close(opts?: { release?: boolean }): Promise<void>;
}

/** Starts the overlay of `configText` (JSON) and keeps trying until it starts or is closed. */
export function runOverlay(configText: string, log: AgentLog): RunningOverlay {
  const stop = new AbortController();
  let overlay: Overlay | undefined;
  const loop = (async () => {
    let cfg;
    try {
      cfg = parseOverlayConfig(JSON.parse(configText));
      // the TLS files too: a wrong path is a configuration error, reported once rather than retried
      readEtcdTls(cfg.etcd);
    } catch (e) {
      log('overlay-config-invalid', { message: (e as Error).message });
      return;
    }
    let backoff = 500;
    while (!stop.signal.aborted) {
      try {
        overlay = await startOverlay(cfg, log);
        if (stop.signal.aborted) await overlay.close();
        return;
      } catch (e) {
        log('overlay-start-failed', { network: cfg.name, message: (e as Error).message, retryMs: backoff });
        await sleep(backoff, undefined, { signal: stop.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  })();
  return {
    current: () => overlay,
    async close(opts) {
      stop.abort();
      await loop;
      await overlay?.close(opts);
    },
  };
}
