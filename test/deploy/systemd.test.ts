import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BaseConfig, loadConfig, PROJECT_ROOT } from '../../platform/config.ts';

const dir = join(PROJECT_ROOT, 'infra', 'systemd');
const UNITS = ['virtplane-command.service', 'virtplane-projector.service', 'virtplane-host-agent.service'];
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const scratch = mkdtempSync(join(tmpdir(), 'virtplane-units-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** systemd-analyze exits 0 on an unknown key or a bad value and only says so: any word from it is a failure. */
const verify = (paths: string[]) => {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...paths], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
};

const envFile = (name: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(join(dir, name), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

describe.skipIf(!hasAnalyze)('systemd units', () => {
  it('pass systemd-analyze verify without a word', () => {
    expect(verify(UNITS.map((u) => join(dir, u)))).toEqual({ status: 0, output: '' });
  });

  it('are checked for real: a misspelt key is reported', () => {
    const broken = join(scratch, 'virtplane-command.service');
    writeFileSync(broken, readFileSync(join(dir, UNITS[0]!), 'utf8').replace('ProtectSystem=strict', 'ProtectSytem=strict'));
    expect(verify([broken]).output).toContain("Unknown key 'ProtectSytem'");
  });

  it.skipIf(!existsSync('/lib/systemd/system/nats-server.service'))("leave Debian's nats-server unit valid with the drop-in", () => {
    const combined = join(scratch, 'nats-server.service');
    // A drop-in is read as more lines of the unit: a repeated [Service] section, `ExecStart=` resetting the list.
    writeFileSync(combined, `${readFileSync('/lib/systemd/system/nats-server.service', 'utf8')}\n${readFileSync(join(dir, 'nats-server.service.d', 'virtplane.conf'), 'utf8')}`);
    expect(verify([combined])).toEqual({ status: 0, output: '' });
  });
});

describe('environment files', () => {
  it.each([
    ['command.env', 'virtplane-command.service'],
    ['projector.env', 'virtplane-projector.service'],
    ['host-agent.env', 'virtplane-host-agent.service'],
  ])('%s holds settings the loader accepts, and its unit reads it and probes its health address', (env, unit) => {
    const values = envFile(env);
    expect(Object.keys(values).every((k) => k.startsWith('VIRTPLANE_'))).toBe(true);
    const cfg = loadConfig(BaseConfig, {}, values);
    expect(cfg.replicas).toBe(3);
    expect(cfg.healthListen).toMatch(/^127\.0\.0\.1:\d+$/);
    const text = readFileSync(join(dir, unit), 'utf8');
    expect(text).toContain(`EnvironmentFile=/etc/virtplane/${env}`);
    expect(text).toContain('health-check.mjs --wait');
    expect(text).toContain('${VIRTPLANE_HEALTH_LISTEN}');
  });

  it('give each unit a state directory of its own (a dynamic user takes its directory over)', () => {
    const dirs = UNITS.map((u) => readFileSync(join(dir, u), 'utf8').match(/^StateDirectory=(.+)$/m)?.[1]);
    expect(new Set(dirs).size).toBe(3);
  });

  it('give each service its own health port', () => {
    const ports = ['command.env', 'projector.env', 'host-agent.env'].map((f) => envFile(f).VIRTPLANE_HEALTH_LISTEN);
    expect(new Set(ports).size).toBe(3);
  });
});
