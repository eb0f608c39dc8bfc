import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../platform/config.ts';

/**
 * No Docker engine here to build the image: what can be checked without one is that the Dockerfile and
 * the compose file agree with the tree and with each other.
 */
const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*(#[^\n]*\n\s*)*/g, ' ');
const stages = new Map<string, string[]>();
let current = '';
for (const line of dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
  const from = line.match(/^FROM\s+\S+\s+AS\s+(\S+)/i);
  if (from) current = from[1]!;
  stages.set(current, [...(stages.get(current) ?? []), line]);
}
const stage = (name: string) => stages.get(name) ?? [];
/** The entry points `npm run build` writes, and the one the image's build adds. */
const BUILT = ['dist/cli.mjs', 'dist/command.mjs', 'dist/projector.mjs', 'dist/host-agent.mjs', 'dist/embedded.mjs', 'dist/auth.mjs'];

describe('the Dockerfile', () => {
  it('builds with npm ci and npm run build, and keeps only production dependencies', () => {
    const run = stage('build').filter((l) => l.startsWith('RUN')).join(' ');
    expect(run).toMatch(/npm ci && npm run build/);
    expect(run).toContain('--outfile=dist/auth.mjs');
    expect(run).toContain('npm prune --omit=dev');
    expect(stage('build')[0]).toMatch(/^FROM node:20/);
  });

  it('runs as the unprivileged node user with a health check, copying only what exists', () => {
    const runtime = stage('runtime');
    expect(runtime[0]).toMatch(/^FROM node:20-bookworm-slim AS runtime/);
    expect(runtime.filter((l) => l.startsWith('USER'))).toEqual(['USER node']);
    expect(runtime.join('\n')).toMatch(/HEALTHCHECK .*node \/app\/platform\/health-check\.mjs "\$VIRTPLANE_HEALTH_LISTEN"/);
    for (const copy of runtime.filter((l) => l.startsWith('COPY --from=build'))) {
      for (const src of copy.split(/\s+/).slice(2, -1)) {
        const rel = src.replace(/^\/src\//, '');
        if (rel === 'dist' || rel === 'node_modules') continue;
        expect(existsSync(join(PROJECT_ROOT, rel)), rel).toBe(true);
      }
    }
  });

  it('has an agent stage with root and the hypervisor and network tools', () => {
    const agent = stage('agent').join('\n');
    expect(agent).toMatch(/^FROM runtime AS agent/);
    expect(agent).toContain('USER root');
    for (const pkg of ['qemu-system-x86', 'qemu-utils', 'iproute2', 'nftables', 'dnsmasq-base']) expect(agent).toContain(pkg);
  });

  it('leaves the host’s node_modules and data out of the build context', () => {
    const ignored = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', '.data', '.git']) expect(ignored).toContain(p);
  });
});

describe('the compose file and the image', () => {
  const compose = parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { command?: string[]; build?: { target?: string }; image?: string; user?: string }>;
  };
  it('run only entry points the image holds, from its stages', () => {
    const stagesUsed = new Set<string>();
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.image?.startsWith('nats:')) continue;
      const script = s.command?.[1];
      expect(s.command?.[0], name).toBe('node');
      expect(BUILT, `${name} runs ${script}`).toContain(script);
      stagesUsed.add(s.build?.target ?? '');
    }
    expect([...stagesUsed].sort()).toEqual(['agent', 'runtime']);
  });
});
