import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../platform/config.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');
const README = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
const EXAMPLES = join(PROJECT_ROOT, 'examples');
const xmlExamples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.xml')).sort();

/** The README's shell blocks, as command lines (a `&&` chain is two), comments dropped. */
const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
  m[1]!
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean)
    .flatMap((l) => l.split(' && ').map((x) => x.trim())),
);
describe('examples/', () => {
  it('holds every file the README names, and the README needs nothing outside the clone', () => {
    const named = [...new Set(README.match(/examples\/[\w.*-]+/g) ?? [])].filter((f) => !f.includes('*'));
    expect(named.length).toBeGreaterThanOrEqual(6);
    for (const f of named) expect(existsSync(join(PROJECT_ROOT, f)), f).toBe(true);
    for (const b of blocks) for (const l of b) expect(l).not.toContain('../shared');
  });

  it('uses real MAC addresses, not placeholders', () => {
    const texts = [README, ...readdirSync(EXAMPLES).map((f) => readFileSync(join(EXAMPLES, f), 'utf8'))].join('\n');
    const macs = texts.match(/\b[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\b/g) ?? [];
    expect(macs.length).toBeGreaterThan(0);
    for (const m of macs) expect(m).not.toBe('52:54:00:12:34:56');
    expect(texts).not.toMatch(/52:54:00:xx:xx:xx(?! generated)/);
  });

  it('passes `virtplane validate` offline', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'validate', ...xmlExamples.map((f) => join(EXAMPLES, f))], { cwd: PROJECT_ROOT });
    expect(stdout.trim().split('\n')).toHaveLength(xmlExamples.length);
    expect(stdout).not.toContain('error');
  });
});

describe("the README's commands, as written", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ hostId: 'readme-host' });
  }, 120_000);
  afterAll(async () => stack?.stop());

  const virtplane = async (line: string) => {
    try {
      // Through a shell, as a reader would paste it: its quoting and globs are the shell's.
      const shell = line.replace(/^npx virtplane /, '"$VIRTPLANE_NODE" "$VIRTPLANE_CLI" ');
      const env = { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url, VIRTPLANE_NATS_CONTEXT: '', VIRTPLANE_NODE: process.execPath, VIRTPLANE_CLI: CLI };
      return (await run('/bin/sh', ['-c', shell], { cwd: PROJECT_ROOT, env, timeout: 60_000 })).stdout;
    } catch (e) {
      const err = e as Error & { stderr?: string };
      throw new Error(`${line}: ${err.stderr ?? err.message}`);
    }
  };

  it('run from a clone against a stack on the test driver', async () => {
    const cli = blocks.find((b) => b.includes('npx virtplane host-list'))!;
    // Those that need no hypervisor: every line of the CLI tour but the endless event feed, and the
    // test-driver domain, the JSON model and validation from the XML tour.
    const xml = blocks.find((b) => b.some((l) => l.includes('examples/test-domain.xml')))!;
    const endless = (l: string) => /\bevent\b.*--loop/.test(l) && !l.includes('--timeout');
    const lines = [...cli.filter((l) => !endless(l)), ...xml.filter((l) => /test-domain\.xml|dom\.json|validate/.test(l))];
    expect(lines.length).toBeGreaterThan(10);
    for (const l of lines) await virtplane(l);
    const names = JSON.parse(await virtplane('npx virtplane list --all --json')).map((d: { name: string }) => d.name).sort();
    expect(names).toEqual(['web2', 'web3']);
  }, 120_000);
});

describe('a plain clone', () => {
  let clone: string;
  beforeAll(async () => {
    clone = await mkdtemp(join(tmpdir(), 'virtplane-clone-'));
    const r = spawnSync('git', ['clone', '--quiet', '--depth', '1', `file://${PROJECT_ROOT}`, join(clone, 'virtplane')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    await symlink(join(PROJECT_ROOT, 'node_modules'), join(clone, 'virtplane', 'node_modules'));
  });
  afterAll(async () => clone && rm(clone, { recursive: true, force: true }));

  it('says in one line that the conformance corpus is absent, and exits 0', () => {
    const env = { ...process.env, VIRTPLANE_CONFORMANCE_DIR: '' };
    const r = spawnSync('npm', ['run', '-s', 'conformance'], { cwd: join(clone, 'virtplane'), env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^conformance: skipped, no corpus at \S+shared\/conformance \(set VIRTPLANE_CONFORMANCE_DIR to a copy of it\)$/);
  });

  it('refuses a corpus setting that names no directory', () => {
    const r = spawnSync('npm', ['run', '-s', 'conformance'], { cwd: join(clone, 'virtplane'), env: { ...process.env, VIRTPLANE_CONFORMANCE_DIR: join(clone, 'nowhere') }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`error: VIRTPLANE_CONFORMANCE_DIR=${join(clone, 'nowhere')}: no such directory [invalid-arg]`);
  });

  it('validates the examples the README uses', () => {
    const r = spawnSync(process.execPath, ['bin/virtplane.mjs', 'validate', ...xmlExamples.map((f) => `examples/${f}`)], { cwd: join(clone, 'virtplane'), encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
