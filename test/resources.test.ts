import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { virtplane } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/** The same domain the expectations below were taken from with `virsh -c test:///default`. */
const XML = `<domain type='test'><name>res1</name><memory unit='KiB'>1000000</memory><currentMemory unit='KiB'>600000</currentMemory>
<vcpu current='2'>3</vcpu><os><type>hvm</type></os><devices><memballoon model='virtio'/></devices></domain>`;

describe('setmem, setmaxmem, setvcpus and vcpucount, as virsh', () => {
  let stack: Stack;
  let env: Record<string, string>;
  const sizes = async () => {
    const xml = (await virtplane(env, 'dumpxml', 'res1', '--inactive')).stdout;
    return xml.split('\n').filter((l) => /<(memory|currentMemory|vcpu)\b/.test(l)).map((l) => l.trim());
  };
  const events = async () => (await stack.client.get('res1')).version;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const file = join(stack.dataDir, 'res1.xml');
    await writeFile(file, XML);
    expect((await virtplane(env, 'define', file)).code).toBe(0);
  }, 60_000);
  afterAll(async () => stack?.stop());

  it('--config changes the persistent definition within libvirt limits', { timeout: 60_000 }, async () => {
    expect((await virtplane(env, 'vcpucount', 'res1')).stdout).toBe('maximum      config         3\ncurrent      config         2\n');
    expect(await virtplane(env, 'setmem', 'res1', '700000', '--config')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    expect(await sizes()).toEqual(["<memory unit='KiB'>1000000</memory>", "<currentMemory unit='KiB'>700000</currentMemory>", "<vcpu placement='static' current='2'>3</vcpu>"]);
    expect((await virtplane(env, 'setmem', 'res1', '256M', '--config')).code).toBe(0);
    expect((await sizes())[1]).toBe("<currentMemory unit='KiB'>262144</currentMemory>");
    // Neither flag on a shut off domain: setmaxmem changes the config, taking current memory down with it.
    expect((await virtplane(env, 'setmaxmem', 'res1', '200000')).code).toBe(0);
    expect((await sizes()).slice(0, 2)).toEqual(["<memory unit='KiB'>200000</memory>", "<currentMemory unit='KiB'>200000</currentMemory>"]);
    expect((await virtplane(env, 'setmaxmem', 'res1', '1000000', '--config')).code).toBe(0);
    expect((await virtplane(env, 'setvcpus', 'res1', '2', '--config', '--maximum')).code).toBe(0);
    expect((await sizes())[2]).toBe("<vcpu placement='static'>2</vcpu>");
    expect((await virtplane(env, 'setvcpus', 'res1', '4', '--config', '--maximum')).code).toBe(0);
    expect((await virtplane(env, 'setvcpus', 'res1', '3', '--config')).code).toBe(0);
    expect((await virtplane(env, 'vcpucount', 'res1', '--config')).stdout).toBe('3\n');
    expect((await virtplane(env, 'vcpucount', 'res1', '--maximum')).stdout).toBe('4\n');
  });

  it('refuses what virsh refuses, in its words, and records nothing', { timeout: 60_000 }, async () => {
    const before = await events();
    const cases: Array<[string[], number, string]> = [
      [['setmem', 'res1', '2000000', '--config'], 1, 'error: invalid argument: cannot set memory higher than max memory [invalid-arg]'],
      [['setmem', 'res1', '1G', '--config'], 1, 'error: invalid argument: cannot set memory higher than max memory [invalid-arg]'],
      [['setmem', 'res1', '100'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['setmem', 'res1', '100', '--live'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['setmem', 'res1', '0', '--config'], 1, 'error: memory in virDomainSetMemoryFlags must not be zero [invalid-arg]'],
      [['setmem', 'res1', 'abc'], 2, "error: Scaled numeric value 'abc' for <size> option is malformed or out of range"],
      [['setmem', 'res1', '100', '--current', '--config'], 2, 'error: Options --current and --config are mutually exclusive'],
      [['setvcpus', 'res1', '5', '--config'], 1, 'error: invalid argument: requested cpu amount exceeds maximum (5 > 4) [invalid-arg]'],
      [['setvcpus', 'res1', '0'], 1, "error: Can't set 0 processors for a VM [invalid-arg]"],
      [['setvcpus', 'res1', 'abc'], 2, "error: Numeric value 'abc' for <count> option is malformed or out of range"],
      [['setvcpus', 'res1', '4', '--maximum'], 2, 'error: Option --config is required by option --maximum'],
      [['setvcpus', 'res1', '2'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['vcpucount', 'res1', '--live'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['vcpucount', 'res1', '--active', '--maximum'], 2, 'error: Options --active and --maximum are mutually exclusive'],
      [['setmem', 'nosuch', '100'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
      [['setmaxmem', 'nosuch', '100'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
      [['setvcpus', 'nosuch', '1'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
      [['vcpucount', 'nosuch'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
    ];
    for (const [args, code, err] of cases) {
      const r = await virtplane(env, ...args);
      expect([args.join(' '), r.code, r.stderr.trim()]).toEqual([args.join(' '), code, err]);
    }
    expect(await events()).toBe(before);
  });

  it('on a running test domain the live definition changes and the next boot keeps its own', { timeout: 60_000 }, async () => {
    expect((await virtplane(env, 'start', 'res1')).code).toBe(0);
    expect((await virtplane(env, 'setmem', 'res1', '400000')).code).toBe(0);
    expect((await virtplane(env, 'dominfo', 'res1')).stdout).toMatch(/^Used memory: {4}400000 KiB$/m);
    // What the test driver reports follows the live definition.
    expect((await virtplane(env, 'dommemstat', 'res1')).stdout).toMatch(/^actual 400000$/m);
    expect((await virtplane(env, 'setvcpus', 'res1', '1', '--live')).code).toBe(0);
    expect((await virtplane(env, 'vcpucount', 'res1')).stdout).toBe('maximum      config         4\nmaximum      live           4\ncurrent      config         3\ncurrent      live           1\n');
    const max = await virtplane(env, 'setmaxmem', 'res1', '100');
    expect(max.stderr.trim().split('\n')).toEqual(['error: Unable to change MaxMemorySize', 'error: Requested operation is not valid: cannot resize the maximum memory on an active domain [operation-invalid]']);
    expect((await virtplane(env, 'setmem', 'res1', '300000', '--config')).code).toBe(0);
    expect((await virtplane(env, 'dominfo', 'res1')).stdout).toMatch(/^Used memory: {4}400000 KiB$/m);
    // Stopped, the domain takes the persistent definition again.
    expect((await virtplane(env, 'destroy', 'res1')).code).toBe(0);
    expect((await virtplane(env, 'dominfo', 'res1')).stdout).toMatch(/^Used memory: {4}300000 KiB$/m);
    expect((await virtplane(env, 'vcpucount', 'res1')).stdout).toBe('maximum      config         4\ncurrent      config         3\n');
  });
});
