#!/usr/bin/env node
// Runs the built CLI (dist/cli.mjs). From a source checkout that was never built, it runs the
// TypeScript through tsx instead, and says so: that costs about half a second a command.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli.mjs', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  process.stderr.write('virtplane: dist/ is not built, running from sources through tsx (slower); `npm run build` builds it\n');
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../cli/main.ts');
  process.exitCode = await main(process.argv);
}
