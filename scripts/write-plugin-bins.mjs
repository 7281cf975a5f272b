// After tsc: turn each dist/plugins/netplumb-*.js into an executable without extension, so that
// CNI_PATH=<repo>/dist/plugins finds `netplumb-bridge` etc. the way a runtime looks plugins up.
// The shebang drops NODE_EXTRA_CA_CERTS: with it set, Node parses the CA bundle while starting (about 30 ms
// of a ~45 ms start here), and a plugin never opens a TLS connection.
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../dist/plugins/', import.meta.url).pathname;
if (existsSync(dir)) {
  for (const f of readdirSync(dir)) {
    const m = /^(netplumb-[a-z-]+)\.js$/.exec(f);
    if (!m) continue;
    const bin = join(dir, m[1]);
    writeFileSync(bin, `#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node\nimport './${f}';\n`);
    chmodSync(bin, 0o755);
  }
}
