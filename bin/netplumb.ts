#!/usr/bin/env node
/** The `netplumb` command (lib/cli). */
import { main } from '../lib/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
