#!/usr/bin/env node
// Bundles the CLI, the services, the host agent and the embedded default into dist/ (one ES module
// each, with source maps; the CLI's split into chunks its verbs load as they need them), and the client package into packages/client/dist/. `--types` also writes
// the client's declaration files (tsc, slower: only packing needs them).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  // An installed package ships dist/ already built and has no sources or build tools.
  if (existsSync(join(root, 'dist', 'cli.mjs'))) process.exit(0);
  process.stderr.write('error: esbuild is not installed: run `npm ci` first\n');
  process.exit(1);
}

const ENTRIES = {
  command: 'services/command/main.ts',
  'parse-worker': 'services/command/parse-worker.ts',
  projector: 'services/projector/main.ts',
  'host-agent': 'services/host-agent/main.ts',
  embedded: 'infra/embedded.ts',
  'fence-guard': 'services/host-agent/fence-guard-main.ts',
};

// zod carries error messages in 48 languages (a fifth of every bundle, compiled at each start);
// virtplane speaks English only, and zod's English messages are imported on their own.
const englishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'zod-english-only' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      resolveDir: root,
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  logLevel: 'warning',
  legalComments: 'none',
};

// Written over in place, never emptied first: a process starting from dist/ meanwhile finds its files.
const dist = join(root, 'dist');
const bundled = {
  ...common,
  outdir: dist,
  outExtension: { '.js': '.mjs' },
  // Smaller bundles start faster (node compiles every byte it loads); the source maps keep stacks readable.
  minify: true,
  keepNames: true,
  // commander and a few others are CommonJS: give them the `require` an ES module lacks.
  banner: { js: "import { createRequire as __vpRequire } from 'node:module'; const require = __vpRequire(import.meta.url);" },
  // The source checkout's fallback loader: never in a bundle.
  external: ['tsx', 'tsx/*'],
  plugins: [englishOnly],
};
await esbuild.build({ ...bundled, entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, join(root, v)])) });

// The CLI starts once per command, so it is split: each verb's dynamic imports (the XML layer, the
// OpenTelemetry SDK, enrolment, progress bars, the client) become chunks loaded only by the verbs
// that use them, and `--help` or a listing compiles a fraction of the whole.
const CHUNK = /^cli-chunk-[A-Z0-9]+\.mjs(\.map)?$/;
const cli = await esbuild.build({
  ...bundled,
  entryPoints: { cli: join(root, 'cli/entry.ts') },
  splitting: true,
  chunkNames: 'cli-chunk-[hash]',
  // The ES module build of a package where it ships one: esbuild drops what is never used from it
  // (@opentelemetry/core's CommonJS build would bring all of its semantic conventions along).
  mainFields: ['module', 'main'],
  metafile: true,
});
// Chunks of earlier builds go once the new ones are written (their names change with their content).
const written = new Set(Object.keys(cli.metafile.outputs).map((f) => f.split('/').pop()));
for (const f of readdirSync(dist)) if (CHUNK.test(f) && !written.has(f) && !written.has(f.replace(/\.map$/, ''))) rmSync(join(dist, f));
writeFileSync(join(dist, 'package.json'), '{ "type": "module" }\n');

// The client package keeps its dependencies external: a consumer shares one zod and one nats.js.
const client = join(root, 'packages', 'client');
const clientDist = join(client, 'dist');
rmSync(clientDist, { recursive: true, force: true });
mkdirSync(clientDist, { recursive: true });
await esbuild.build({
  ...common,
  entryPoints: [join(root, 'client', 'exports.ts')],
  outfile: join(clientDist, 'index.js'),
  packages: 'external',
});

if (process.argv.includes('--types')) {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(client, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  // tsc keeps the sources' `.ts` specifiers in declarations; a consumer resolves the emitted `.js`.
  for (const file of listDeclarations(join(clientDist, 'types'))) {
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/((?:from |import\()['"]\.{1,2}\/[^'"]*)\.ts(['"])/g, '$1.js$2'));
  }
  writeFileSync(join(clientDist, 'index.d.ts'), "export * from './types/client/exports.js';\n");
}

function listDeclarations(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath ?? e.path, e.name));
}
