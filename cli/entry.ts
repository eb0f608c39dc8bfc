import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Node 22.1+ can keep the compiled code of the CLI between runs (the largest share of starting it);
// Node 20 has no such cache and starts without one. NODE_COMPILE_CACHE, when set, takes precedence.
const enableCompileCache = (module as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
if (enableCompileCache && !process.env.NODE_COMPILE_CACHE) {
  try {
    enableCompileCache(join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'virtplane', 'compile-cache'));
  } catch {
    // A cache that cannot be written costs speed only.
  }
}

// Loaded after the cache is on: whatever it imports is compiled through it.
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv);
