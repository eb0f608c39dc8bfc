import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DomainDefinition, type DomainDefinitionInput } from '../../contracts/domain/definition.ts';
import { VirtError, virtError } from '../../contracts/errors.ts';
import type { DomainObservation } from '../hypervisor.ts';
import { TestDriver, type DriverOp } from './test-driver.ts';

let seq = 0;
const domain = (over: Partial<DomainDefinitionInput> = {}) => {
  seq += 1;
  const n = seq.toString(16).padStart(12, '0');
  return DomainDefinition.parse({ name: `vm${seq}`, uuid: `00000000-0000-4000-8000-${n}`, memoryKiB: 65536, vcpus: 1, ...over });
};

const rejection = async (p: Promise<unknown>): Promise<VirtError> => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(VirtError);
    return e as VirtError;
  }
  throw new Error('expected the operation to be refused');
};

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('capabilities', () => {
  it('is the test driver, sized like this machine', async () => {
    const caps = await new TestDriver().capabilities();
    expect(caps).toMatchObject({ driver: 'test', domainTypes: ['test'], cpus: cpus().length, memoryKiB: Math.floor(totalmem() / 1024) });
    expect(new TestDriver().name).toBe('test');
  });

  it('runs kvm and qemu definitions only when asked to', async () => {
    expect((await new TestDriver({ acceptAllTypes: true }).capabilities()).domainTypes).toEqual(['test', 'kvm', 'qemu']);
    const d = domain({ type: 'kvm' });
    const err = await rejection(new TestDriver().start(d));
    expect(err.code).toBe('operation-unsupported');
    expect(err.message).toBe("domain type 'kvm' is not supported by the test driver");
    expect(await new TestDriver({ acceptAllTypes: true }).start(d)).toEqual({ state: 'running', reason: 'booted' });
    expect(await new TestDriver({ acceptAllTypes: true }).start(domain({ type: 'qemu' }))).toEqual({ state: 'running', reason: 'booted' });
  });
});

describe('test driver semantics', () => {
  let drv: TestDriver;
  beforeEach(() => {
    drv = new TestDriver();
  });

  it('a domain never seen is shutoff/unknown and not listed', async () => {
    const d = domain();
    expect(await drv.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'unknown' });
    expect(await drv.list()).toEqual([]);
    expect(drv.bootCount(d.uuid)).toBe(0);
  });

  describe('start', () => {
    it('boots to running/booted and lists the guest', async () => {
      const d = domain();
      expect(await drv.start(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(await drv.state(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
      expect(await drv.list()).toEqual([{ uuid: d.uuid, name: d.name, state: 'running', reason: 'booted' }]);
      expect(drv.bootCount(d.uuid)).toBe(1);
    });

    it('paused boots to paused/user', async () => {
      const d = domain();
      expect(await drv.start(d, { paused: true })).toEqual({ state: 'paused', reason: 'user' });
      expect(drv.bootCount(d.uuid)).toBe(1);
    });

    it('of an active guest reports its state and boots nothing', async () => {
      const d = domain();
      await drv.start(d);
      expect(await drv.start(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(await drv.start(d, { paused: true })).toEqual({ state: 'running', reason: 'booted' });
      await drv.suspend(d.uuid);
      expect(await drv.start(d)).toEqual({ state: 'paused', reason: 'user' });
      expect(drv.bootCount(d.uuid)).toBe(1);
    });

    it('after a stop boots again', async () => {
      const d = domain();
      await drv.start(d);
      await drv.destroy(d.uuid);
      expect(await drv.start(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(drv.bootCount(d.uuid)).toBe(2);
    });
  });

  describe('shutdown applies on_poweroff', () => {
    for (const [action, expected] of [
      ['destroy', { state: 'shutoff', reason: 'shutdown' }],
      ['preserve', { state: 'shutoff', reason: 'shutdown' }],
      ['restart', { state: 'running', reason: 'booted' }],
      ['rename-restart', { state: 'running', reason: 'booted' }],
    ] as const) {
      it(`${action}: ${expected.state}/${expected.reason}`, async () => {
        const d = domain({ onPoweroff: action });
        await drv.start(d);
        expect(await drv.shutdown(d)).toEqual(expected);
        expect(drv.bootCount(d.uuid)).toBe(1);
      });
    }

    it('of a paused guest is accepted, as in libvirt', async () => {
      const d = domain();
      await drv.start(d, { paused: true });
      expect(await drv.shutdown(d)).toEqual({ state: 'shutoff', reason: 'shutdown' });
    });

    it('of a shut off guest reports it as it is', async () => {
      const d = domain();
      expect(await drv.shutdown(d)).toEqual({ state: 'shutoff', reason: 'unknown' });
      await drv.start(d);
      await drv.destroy(d.uuid);
      expect(await drv.shutdown(d)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    });

    it('a restart counts as a reboot, not a boot', async () => {
      const d = domain({ onPoweroff: 'restart' });
      await drv.start(d);
      await drv.shutdown(d);
      expect(drv.rebootCount(d.uuid)).toBe(1);
      expect(drv.bootCount(d.uuid)).toBe(1);
    });
  });

  describe('reboot applies on_reboot', () => {
    it('restart: stays running/booted', async () => {
      const d = domain();
      await drv.start(d);
      expect(await drv.reboot(d)).toEqual({ state: 'running', reason: 'booted' });
      expect(drv.rebootCount(d.uuid)).toBe(1);
      expect(drv.bootCount(d.uuid)).toBe(1);
    });

    it('destroy and preserve: shutoff/shutdown', async () => {
      for (const action of ['destroy', 'preserve'] as const) {
        const d = domain({ onReboot: action });
        await drv.start(d);
        expect(await drv.reboot(d)).toEqual({ state: 'shutoff', reason: 'shutdown' });
        expect(drv.rebootCount(d.uuid)).toBe(0);
      }
    });

    it('of a paused guest leaves it running/booted', async () => {
      const d = domain();
      await drv.start(d, { paused: true });
      expect(await drv.reboot(d)).toEqual({ state: 'running', reason: 'booted' });
    });

    it('of a shut off guest is not running, unless on_reboot=destroy already holds', async () => {
      const d = domain();
      const err = await rejection(drv.reboot(d));
      expect([err.code, err.message]).toEqual(['operation-invalid', `domain '${d.name}' is not running`]);
      const e = domain({ onReboot: 'destroy' });
      await drv.start(e);
      await drv.reboot(e);
      expect(await drv.reboot(e)).toEqual({ state: 'shutoff', reason: 'shutdown' });
    });
  });

  describe('destroy', () => {
    it('running or paused: shutoff/destroyed', async () => {
      const a = domain();
      const b = domain();
      await drv.start(a);
      await drv.start(b, { paused: true });
      expect(await drv.destroy(a.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(await drv.destroy(b.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(await drv.list()).toEqual([]);
    });

    it('of a shut off guest reports what really stopped it', async () => {
      const d = domain();
      expect(await drv.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'unknown' });
      await drv.start(d);
      await drv.destroy(d.uuid);
      expect(await drv.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      await drv.start(d);
      await drv.powerOffFromGuest(d.uuid);
      expect(await drv.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'shutdown' });
    });

    it('of a crashed guest kept for inspection stops it', async () => {
      const d = domain({ onCrash: 'preserve' });
      await drv.start(d);
      await drv.crash(d.uuid);
      expect(await drv.destroy(d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    });
  });

  describe('suspend and resume', () => {
    it('suspend: paused/user; again: reports paused', async () => {
      const d = domain();
      await drv.start(d);
      expect(await drv.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
      expect(await drv.suspend(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
    });

    it('suspend of a shut off or unknown guest is not running', async () => {
      const d = domain();
      await drv.start(d);
      await drv.destroy(d.uuid);
      const err = await rejection(drv.suspend(d.uuid));
      expect([err.code, err.message]).toEqual(['operation-invalid', `domain '${d.name}' is not running`]);
      const unknown = await rejection(drv.suspend('11111111-1111-4111-8111-111111111111'));
      expect(unknown.message).toBe("domain '11111111-1111-4111-8111-111111111111' is not running");
    });

    it('resume: running/unpaused; of a running guest reports running', async () => {
      const d = domain();
      await drv.start(d, { paused: true });
      expect(await drv.resume(d.uuid)).toEqual({ state: 'running', reason: 'unpaused' });
      expect(await drv.resume(d.uuid)).toEqual({ state: 'running', reason: 'unpaused' });
    });

    it('resume of a shut off or crashed guest is not paused', async () => {
      const d = domain();
      const err = await rejection(drv.resume(d.uuid));
      expect([err.code, err.message]).toEqual(['operation-invalid', `domain '${d.uuid}' is not paused`]);
      await drv.start(d);
      await drv.destroy(d.uuid);
      expect((await rejection(drv.resume(d.uuid))).message).toBe(`domain '${d.name}' is not paused`);
      const c = domain({ onCrash: 'preserve' });
      await drv.start(c);
      await drv.crash(c.uuid);
      expect((await rejection(drv.resume(c.uuid))).code).toBe('operation-invalid');
    });
  });

  describe('changes seen on the host', () => {
    let seen: DomainObservation[];
    beforeEach(() => {
      seen = [];
      drv.onObservation((o) => seen.push(o));
    });

    it('a crash under on_crash=destroy is observed as shutoff/crashed', async () => {
      const d = domain();
      await drv.start(d);
      expect(await drv.crash(d.uuid)).toEqual({ state: 'shutoff', reason: 'crashed' });
      expect(seen).toEqual([{ uuid: d.uuid, state: 'shutoff', reason: 'crashed', cause: 'guest crashed' }]);
      expect(await drv.list()).toEqual([]);
    });

    it('on_crash=preserve keeps a crashed guest; restart brings it back running/crashed', async () => {
      const p = domain({ onCrash: 'preserve' });
      const r = domain({ onCrash: 'restart' });
      await drv.start(p);
      await drv.start(r);
      await drv.crash(p.uuid, 'kernel panic');
      await drv.crash(r.uuid);
      expect(seen).toEqual([
        { uuid: p.uuid, state: 'crashed', reason: 'panicked', cause: 'kernel panic' },
        { uuid: r.uuid, state: 'running', reason: 'crashed', cause: 'guest crashed' },
      ]);
      expect((await drv.list()).map((g) => g.uuid).sort()).toEqual([p.uuid, r.uuid].sort());
    });

    it('a guest powering itself off is observed as shutoff/shutdown', async () => {
      const d = domain();
      await drv.start(d);
      expect(await drv.powerOffFromGuest(d.uuid)).toEqual({ state: 'shutoff', reason: 'shutdown' });
      expect(seen).toEqual([{ uuid: d.uuid, state: 'shutoff', reason: 'shutdown', cause: 'guest powered off' }]);
    });

    it('a guest powering off under on_poweroff=restart comes back running/booted', async () => {
      const d = domain({ onPoweroff: 'restart' });
      await drv.start(d, { paused: true });
      await drv.resume(d.uuid);
      expect(await drv.powerOffFromGuest(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
      expect(seen).toEqual([{ uuid: d.uuid, state: 'running', reason: 'booted', cause: 'guest powered off' }]);
      // nothing changed the second time: nothing to observe
      await drv.powerOffFromGuest(d.uuid);
      expect(seen).toHaveLength(1);
      expect(drv.rebootCount(d.uuid)).toBe(2);
    });

    it('operations asked for are results, not observations', async () => {
      const d = domain();
      await drv.start(d);
      await drv.suspend(d.uuid);
      await drv.destroy(d.uuid);
      expect(seen).toEqual([]);
    });

    it('a shut off guest cannot crash or power off', async () => {
      const d = domain();
      expect((await rejection(drv.crash(d.uuid))).code).toBe('operation-invalid');
      expect((await rejection(drv.powerOffFromGuest(d.uuid))).message).toBe(`domain '${d.uuid}' is not running`);
      expect(seen).toEqual([]);
    });

    it('unsubscribed and failing listeners do not stop the others', async () => {
      const other: DomainObservation[] = [];
      const off = drv.onObservation(() => other.push({} as DomainObservation));
      drv.onObservation(() => {
        throw new Error('listener bug');
      });
      off();
      const d = domain();
      await drv.start(d);
      await drv.crash(d.uuid);
      expect(other).toEqual([]);
      expect(seen).toHaveLength(1);
    });

    it('close stops observations; guests keep running', async () => {
      const d = domain();
      await drv.start(d);
      await drv.close();
      await drv.crash(d.uuid);
      expect(seen).toEqual([]);
    });
  });
});

describe('latency', () => {
  it('0 takes no timer at all', async () => {
    const drv = new TestDriver({ latencyMs: 0 });
    const before = timers();
    const d = domain();
    const p = drv.start(d);
    expect(timers()).toBe(before);
    await p;
  });

  it('a fixed latency delays each operation', async () => {
    const drv = new TestDriver({ latencyMs: 40 });
    const d = domain();
    const t0 = performance.now();
    const before = timers();
    const p = drv.start(d);
    // the measure the zero-latency test relies on does see a pending wait
    expect(timers()).toBe(before + 1);
    expect(await drv.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'unknown' });
    await p;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    expect(await drv.state(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
  });

  it('a range draws each latency from it', async () => {
    const drv = new TestDriver({ latencyMs: { min: 10, max: 110 }, random: () => 0.5 });
    const t0 = performance.now();
    await drv.start(domain());
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(55);
    expect(took).toBeLessThan(1000);
  });

  it('reports progress while it waits', async () => {
    const drv = new TestDriver({ latencyMs: 5 });
    const d = domain();
    const steps: Array<[string, number | undefined]> = [];
    await drv.start(d, { progress: (m, f) => steps.push([m, f]) });
    expect(steps).toEqual([
      [`start domain '${d.name}'`, 0],
      [`start domain '${d.name}'`, 1],
    ]);
  });

  it('overlapping starts of one guest boot it once', async () => {
    const drv = new TestDriver({ latencyMs: { min: 5, max: 30 } });
    const d = domain();
    const results = await Promise.all(Array.from({ length: 5 }, () => drv.start(d)));
    expect(results.every((r) => r.state === 'running')).toBe(true);
    expect(drv.bootCount(d.uuid)).toBe(1);
  });

  it('an abort during the wait refuses the operation and changes nothing', async () => {
    const drv = new TestDriver({ latencyMs: 10_000 });
    const d = domain();
    const ac = new AbortController();
    const p = drv.start(d, { signal: ac.signal });
    ac.abort();
    const err = await rejection(p);
    expect([err.code, err.message]).toEqual(['operation-failed', `operation 'start' on domain '${d.name}' was aborted`]);
    expect(await drv.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'unknown' });
    expect(drv.bootCount(d.uuid)).toBe(0);
  });

  it('an abort reason that is already a VirtError is passed on; an aborted signal refuses at once', async () => {
    const drv = new TestDriver({ latencyMs: 10_000 });
    const d = domain();
    const ac = new AbortController();
    const p = drv.start(d, { signal: ac.signal });
    ac.abort(virtError('timeout', 'deadline passed'));
    expect((await rejection(p)).code).toBe('timeout');
    const err = await rejection(new TestDriver().start(d, { signal: AbortSignal.abort() }));
    expect(err.code).toBe('operation-failed');
  });
});

describe('injected failures', () => {
  it('probability 1 fails every operation with operation-failed', async () => {
    const drv = new TestDriver({ failures: 1 });
    const d = domain();
    const err = await rejection(drv.start(d));
    expect([err.code, err.message]).toEqual(['operation-failed', `operation 'start' failed for domain '${d.name}': injected failure`]);
    // A failed start leaves the guest shutoff/failed, as libvirt's test driver does.
    expect(await drv.state(d.uuid)).toEqual({ state: 'shutoff', reason: 'failed' });
    expect(drv.bootCount(d.uuid)).toBe(0);
    for (const op of [() => drv.destroy(d.uuid), () => drv.shutdown(d), () => drv.suspend(d.uuid), () => drv.resume(d.uuid), () => drv.reboot(d)]) {
      expect((await rejection(op())).code).toBe('operation-failed');
    }
  });

  it('probability 0 never fails; a probability draws from the random source', async () => {
    const none = new TestDriver({ failures: 0 });
    expect(await none.start(domain())).toEqual({ state: 'running', reason: 'booted' });
    const draws = [0.1, 0.9];
    const some = new TestDriver({ failures: 0.5, random: () => draws.shift() ?? 0.9 });
    expect((await rejection(some.start(domain()))).code).toBe('operation-failed');
    expect(await some.start(domain())).toEqual({ state: 'running', reason: 'booted' });
  });

  it('a function decides each operation; a failed operation leaves the guest as it was', async () => {
    const calls: Array<[DriverOp, string]> = [];
    const drv = new TestDriver({
      failures: (op, uuid) => {
        calls.push([op, uuid]);
        return op === 'destroy';
      },
    });
    const d = domain();
    await drv.start(d);
    expect((await rejection(drv.destroy(d.uuid))).code).toBe('operation-failed');
    expect(await drv.state(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
    expect(calls).toEqual([
      ['start', d.uuid],
      ['destroy', d.uuid],
    ]);
  });

  it('a failed start of a running guest leaves it running', async () => {
    let fail = false;
    const drv = new TestDriver({ failures: () => fail });
    const d = domain();
    await drv.start(d);
    fail = true;
    await rejection(drv.start(d));
    expect(await drv.state(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
  });
});

describe('state file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtplane-test-driver-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('guests outlive the driver: a new driver on the file finds them as they were', async () => {
    const stateFile = join(dir, 'guests.json');
    const first = new TestDriver({ stateFile });
    const a = domain();
    const b = domain();
    const c = domain();
    await first.start(a);
    await first.start(b, { paused: true });
    await first.start(c);
    await first.destroy(c.uuid);
    // no close(): the agent process died

    const second = new TestDriver({ stateFile });
    expect((await second.list()).sort((x, y) => x.uuid.localeCompare(y.uuid))).toEqual([
      { uuid: a.uuid, name: a.name, state: 'running', reason: 'booted' },
      { uuid: b.uuid, name: b.name, state: 'paused', reason: 'user' },
    ]);
    expect(await second.state(c.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    // A redelivered start after the restart boots nothing a second time.
    expect(await second.start(a)).toEqual({ state: 'running', reason: 'booted' });
    expect(second.bootCount(a.uuid)).toBe(1);
    expect(second.bootCount(c.uuid)).toBe(1);
    await second.resume(b.uuid);
    await second.close();

    const third = new TestDriver({ stateFile });
    expect(await third.state(b.uuid)).toEqual({ state: 'running', reason: 'unpaused' });
  });

  it('the file is the host: a change another process renames over it is what the driver sees, and acts on, from then on', async () => {
    const stateFile = join(dir, 'guests.json');
    const drv = new TestDriver({ stateFile });
    const a = domain();
    const b = domain();
    await drv.start(a);
    await drv.start(b);
    await drv.destroy(b.uuid);
    const doc = JSON.parse(await readFile(stateFile, 'utf8')) as { version: 1; guests: Array<{ uuid: string; state: string; reason: string }> };
    const changed = doc.guests.map((g) => (g.uuid === a.uuid ? { ...g, state: 'shutoff', reason: 'crashed' } : { ...g, state: 'running', reason: 'booted' }));
    await writeFile(`${stateFile}.other`, JSON.stringify({ ...doc, guests: changed }));
    await rename(`${stateFile}.other`, stateFile);
    expect(await drv.state(a.uuid)).toEqual({ state: 'shutoff', reason: 'crashed' });
    expect((await drv.list()).map((g) => g.uuid)).toEqual([b.uuid]);
    // Acted on: the guest started behind its back is destroyed, the dead one boots again.
    expect(await drv.destroy(b.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    expect(await drv.start(a)).toEqual({ state: 'running', reason: 'booted' });
    expect(drv.bootCount(a.uuid)).toBe(2);
    // Its own writes are not taken for a stranger's: nothing is read back over a newer change.
    expect(await new TestDriver({ stateFile }).state(b.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    // A file caught half written is read once whole, the state meanwhile unchanged.
    await writeFile(stateFile, '{"version":1,"gue');
    expect(await drv.state(a.uuid)).toEqual({ state: 'running', reason: 'booted' });
    await drv.close();
  });

  it('keeps the guests the lifecycle actions of their definition', async () => {
    const stateFile = join(dir, 'guests.json');
    const d = domain({ onPoweroff: 'restart', onCrash: 'preserve' });
    await new TestDriver({ stateFile }).start(d);
    const again = new TestDriver({ stateFile });
    expect(await again.powerOffFromGuest(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
    expect(await again.crash(d.uuid)).toEqual({ state: 'crashed', reason: 'panicked' });
  });

  it('is written atomically and leaves no temporary files behind', async () => {
    const stateFile = join(dir, 'guests.json');
    const drv = new TestDriver({ stateFile });
    const defs = Array.from({ length: 50 }, () => domain());
    await Promise.all(defs.map((d) => drv.start(d)));
    await Promise.all(defs.map((d) => drv.suspend(d.uuid)));
    await drv.close();
    expect(await readdir(dir)).toEqual(['guests.json']);
    const doc = JSON.parse(await readFile(stateFile, 'utf8')) as { version: number; guests: Array<{ state: string }> };
    expect(doc.version).toBe(1);
    expect(doc.guests).toHaveLength(50);
    expect(doc.guests.every((g) => g.state === 'paused')).toBe(true);
  });

  it('each operation resolves only once the file holds its result', async () => {
    const stateFile = join(dir, 'guests.json');
    const drv = new TestDriver({ stateFile });
    const d = domain();
    await drv.start(d);
    expect(await new TestDriver({ stateFile }).state(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
    await drv.crash(d.uuid);
    expect(await new TestDriver({ stateFile }).state(d.uuid)).toEqual({ state: 'shutoff', reason: 'crashed' });
  });

  it('a missing file is an empty host; a damaged one is refused with the path', async () => {
    expect(await new TestDriver({ stateFile: join(dir, 'none.json') }).list()).toEqual([]);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"version":1,"guests":[{"uuid":');
    expect(() => new TestDriver({ stateFile: bad })).toThrow(`test driver state file ${bad} is unreadable`);
  });

  it('a write that fails fails the operation with internal-error', async () => {
    const drv = new TestDriver({ stateFile: join(dir, 'missing-dir', 'guests.json') });
    const err = await rejection(drv.start(domain()));
    expect(err.code).toBe('internal-error');
    expect(err.message).toMatch(/cannot save simulated guests to/);
  });
});

describe('scale', () => {
  it('thousands of simulated hosts in one process hold no timers', async () => {
    const before = timers();
    const hosts = Array.from({ length: 2000 }, () => new TestDriver({ acceptAllTypes: true }));
    const defs = Array.from({ length: 5 }, () => domain({ type: 'kvm' }));
    const t0 = performance.now();
    await Promise.all(hosts.flatMap((h) => defs.map((d) => h.start(d))));
    await Promise.all(hosts.flatMap((h) => defs.map((d) => h.shutdown(d))));
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(timers()).toBe(before);
    expect(hosts.every((h) => defs.every((d) => h.bootCount(d.uuid) === 1))).toBe(true);
  });
});

describe('reset and managedsave', () => {
  it('reset leaves a running or paused guest as it was, and refuses one that is not running', async () => {
    const drv = new TestDriver();
    const d = domain({ type: 'test' });
    expect((await rejection(drv.reset(d.uuid))).message).toBe('domain is not running');
    await drv.start(d);
    expect(await drv.reset(d.uuid)).toEqual({ state: 'running', reason: 'booted' });
    await drv.suspend(d.uuid);
    expect(await drv.reset(d.uuid)).toEqual({ state: 'paused', reason: 'user' });
    expect(drv.bootCount(d.uuid)).toBe(1);
  });

  it('managedsave shuts the guest off (saved), again is the same, and the next start boots it', async () => {
    const drv = new TestDriver();
    const d = domain({ type: 'test' });
    const err = await rejection(drv.managedSave(d));
    expect([err.code, err.message]).toEqual(['operation-invalid', 'domain is not running']);
    await drv.start(d);
    expect(await drv.managedSave(d)).toEqual({ state: 'shutoff', reason: 'saved' });
    // A redelivered task finds the target holding.
    expect(await drv.managedSave(d)).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(await drv.list()).toEqual([]);
    expect(await drv.start(d)).toEqual({ state: 'running', reason: 'booted' });
    await drv.destroy(d.uuid);
    expect((await rejection(drv.managedSave(d))).code).toBe('operation-invalid');
  });
});
