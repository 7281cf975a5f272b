// After tsc: turn each dist/plugins/netplumb-*.js into an executable without extension, so that
// CNI_PATH=<repo>/dist/plugins finds `netplumb-bridge` etc. the way a runtime looks plugins up.
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../dist/plugins/', import.meta.url).pathname;
if (existsSync(dir)) {
  for (const f of readdirSync(dir)) {
    const m = /^(netplumb-[a-z-]+)\.js$/.exec(f);
    if (!m) continue;
    const bin = join(dir, m[1]);
    writeFileSync(bin, `#!/usr/bin/env node\nimport './${f}';\n`);
    chmodSync(bin, 0o755);
  }
}
