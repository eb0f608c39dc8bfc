import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../platform/config.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/**
 * `@virtplane/client` as another team's service meets it: the packed tarball installed into an empty
 * project with npm, type-checked with plain tsc (no access to virtplane's sources) and run with plain
 * node against a running system.
 */
const run = promisify(execFile);
const TSC = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

const CONSUMER = `
import { DomainDefinition, LifecycleEvent, VirtError, VirtplaneClient, isVirtError, type DomainDefinitionInput } from '@virtplane/client';

const definition: DomainDefinitionInput = { name: 'pkg-1', memoryKiB: 65536, vcpus: 1 };
const client = await VirtplaneClient.connect({ url: process.env.VIRTPLANE_NATS_URL! });
const seen: string[] = [];
const stop = new AbortController();
const feed = (async () => {
  for await (const e of client.lifecycle({ signal: stop.signal })) {
    LifecycleEvent.parse(e);
    seen.push(\`\${e.name} \${e.event} \${e.detail}\`);
    if (seen.length === 2) stop.abort();
  }
})();
await new Promise((r) => setTimeout(r, 300));
const defined = await client.define({ definition });
const view = await client.outcome(await client.start(defined.name));
await feed;
let refused = '';
try {
  await client.start('no-such-domain');
} catch (e) {
  if (e instanceof VirtError && isVirtError(e)) refused = e.code;
}
const roundTrip = DomainDefinition.safeParse(view.definition).success;
console.log(JSON.stringify({ state: view.observed.state, seen, refused, roundTrip }));
await client.close();
`;

const MISSPELLED = `
import { VirtplaneClient } from '@virtplane/client';
const client = await VirtplaneClient.connect();
await client.define({ definition: { name: 'x', memoryKiB: 65536, vcpus: 1, memroyKiB: 1 } });
await client.create({ definition: { name: 'y', memoryKiB: 65536, vpcus: 1 } });
`;

describe('@virtplane/client, packed and installed', () => {
  let stack: Stack;
  let work: string;
  let project: string;
  beforeAll(async () => {
    stack = await startStack();
    work = await mkdtemp(join(tmpdir(), 'vp-client-pkg-'));
    project = join(work, 'consumer');
    await mkdir(project);
  }, 240_000);
  afterAll(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('packs without tests, installs with npm, type-checks with tsc, runs with node, and refuses a misspelt field', async () => {
    const packed = JSON.parse((await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: join(PROJECT_ROOT, 'packages', 'client'), maxBuffer: 64 << 20 })).stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files.filter((f) => /\.test\.|(^|\/)test\/|testing\//.test(f))).toEqual([]);
    // The virtplane package too: the CLI, services and agent, built, and no tests.
    const main = JSON.parse((await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PROJECT_ROOT, maxBuffer: 64 << 20 })).stdout) as Array<{ files: Array<{ path: string }> }>;
    const mainFiles = main[0]!.files.map((f) => f.path);
    expect(mainFiles).toEqual(expect.arrayContaining(['bin/virtplane.mjs', 'dist/cli.mjs', 'dist/command.mjs', 'dist/projector.mjs', 'dist/host-agent.mjs', 'dist/embedded.mjs', 'dist/parse-worker.mjs']));
    expect(mainFiles.filter((f) => /\.test\.|(^|\/)test\/|\.ts$/.test(f))).toEqual([]);

    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed[0]!.filename)], { cwd: project, timeout: 180_000 });
    await writeFile(
      join(project, 'tsconfig.json'),
      // What \`tsc --init\` gives a Node project, with its own sources checked strictly.
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, outDir: 'out', types: ['node'] }, files: ['consumer.ts'] }),
    );
    await writeFile(join(project, 'consumer.ts'), CONSUMER);
    await run(process.execPath, [TSC, '-p', project], { cwd: project }).catch((e: { stdout: string }) => {
      throw new Error(`tsc refused the consumer:\n${e.stdout}`);
    });
    const { stdout } = await run(process.execPath, [join(project, 'out', 'consumer.js')], { cwd: project, env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url }, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({ state: 'running', seen: ['pkg-1 DEFINED ADDED', 'pkg-1 STARTED BOOTED'], refused: 'no-domain', roundTrip: true });

    await writeFile(join(project, 'consumer.ts'), MISSPELLED);
    const refused = await run(process.execPath, [TSC, '-p', project, '--noEmit'], { cwd: project }).then(
      () => '',
      (e: { stdout: string }) => e.stdout,
    );
    expect(refused).toMatch(/consumer\.ts\(4,\d+\): error TS(2353|2561): .*'memroyKiB' does not exist/);
    expect(refused).toMatch(/consumer\.ts\(5,\d+\): error TS(2353|2561): .*'vpcus' does not exist/);
  }, 400_000);
});
