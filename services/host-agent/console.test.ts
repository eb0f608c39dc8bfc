import { randomUUID } from 'node:crypto';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openConsole } from '../../client/console.ts';
import { CONSOLE_CONTROL_HEADER } from '../../contracts/console.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { HypervisorDriver } from '../../drivers/hypervisor.ts';
import { createLogger } from '../../platform/log.ts';
import { decodeJson } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';
import { startTestNats, type TestNats } from '../../test/fixtures/nats.ts';
import { ConsoleBridge } from './console.ts';

/**
 * The bridge's session rules on a real nats-server, with the guest's pty stood in for by a stream
 * the test writes to (the qemu end to end test, test/console-e2e.test.ts, runs the real pty): what
 * a pty cannot show, such as how far the host reads ahead of a slow client, is observable here.
 */
const HOST = 'host-c';
const WINDOW = 1024;
const IDLE_MS = 600;

/** A guest console: what the guest writes is pushed by the test, what is typed is collected. */
const guestConsole = () => {
  const typed: Buffer[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      typed.push(chunk);
      cb();
    },
  });
  return { stream, typed };
};

describe('console sessions on the host', () => {
  let t: TestNats;
  let bridge: ConsoleBridge;
  const guests: Array<ReturnType<typeof guestConsole>> = [];
  const running = new Set<string>();
  const driver = {
    name: 'stand-in',
    state: async (uuid: string) => (running.has(uuid) ? { state: 'running', reason: 'booted' } : { state: 'shutoff', reason: 'unknown' }),
    openConsole: async () => {
      const g = guestConsole();
      guests.push(g);
      return { device: 'serial0', stream: g.stream };
    },
  } as unknown as HypervisorDriver;
  const target = (domainId: string) => ({ hostId: HOST, domainId });

  beforeAll(async () => {
    t = await startTestNats();
    bridge = new ConsoleBridge(t.nats, { hostId: HOST, drivers: [driver], heartbeatMs: 100, idleMs: IDLE_MS, windowBytes: WINDOW }, createLogger('test-console', 'error'));
    bridge.start();
  });
  afterAll(async () => {
    await bridge?.stop();
    await t?.stop();
  });

  it('reads the guest no further than a window ahead of what the client has written out, and loses nothing', async () => {
    const dom = randomUUID();
    running.add(dom);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const got: Buffer[] = [];
    const s = await openConsole(t.nats, target(dom), {
      onData: async (c) => {
        got.push(Buffer.from(c));
        await gate;
      },
    });
    const guest = guests.at(-1)!;
    const sent: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      const chunk = Buffer.alloc(256, i);
      sent.push(chunk);
      guest.stream.push(chunk);
    }
    await new Promise((r) => setTimeout(r, 400));
    // The client is stuck on its first chunk: the host stopped reading the guest at the window.
    const forwarded = 64 * 256 - guest.stream.readableLength;
    expect(forwarded).toBeGreaterThanOrEqual(WINDOW);
    expect(forwarded).toBeLessThanOrEqual(WINDOW + 256);
    expect(guest.stream.isPaused()).toBe(true);
    release();
    const end = Date.now() + 5000;
    while (Buffer.concat(got).length < 64 * 256 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);

    s.write(Buffer.from('ls\r'));
    while (guest.typed.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(guest.typed).toString()).toBe('ls\r');
    await s.close();
    expect(await s.ended).toEqual({ reason: 'closed', message: 'closed' });
    expect(guest.stream.destroyed).toBe(true);
    expect(bridge.holdersOf(dom)).toEqual([]);
  });

  it('one session at a time; force takes over and the one that held it is told why', async () => {
    const dom = randomUUID();
    running.add(dom);
    const a = await openConsole(t.nats, target(dom), { onData: () => undefined });
    const heldBy = guests.at(-1)!;
    await expect(openConsole(t.nats, target(dom), { onData: () => undefined })).rejects.toMatchObject({
      code: 'operation-failed',
      message: 'operation failed: Active console session exists for this domain',
    });
    // The refused attempt's pty is let go at once, the holder's kept.
    expect(guests.at(-1)!.stream.destroyed).toBe(true);
    expect(heldBy.stream.destroyed).toBe(false);
    const b = await openConsole(t.nats, target(dom), { force: true, onData: () => undefined });
    expect(await a.ended).toEqual({ reason: 'taken-over', message: "the console was taken over by 'anonymous'" });
    expect(heldBy.stream.destroyed).toBe(true);
    expect(bridge.holdersOf(dom)).toEqual([b.sessionId]);
    await b.close();
  });

  it('lets go of the console when the client stops being heard, and tells a client of a session it does not hold', async () => {
    const dom = randomUUID();
    running.add(dom);
    // A client that asks and then says nothing more, as one killed with SIGKILL.
    const sessionId = 'silent-client-0000000000';
    const closes: unknown[] = [];
    const sub = t.nats.nc.subscribe(subjects.consoleOut(HOST, sessionId), {
      callback: (_e, m) => {
        if (m.headers?.get(CONSOLE_CONTROL_HEADER) === 'close') closes.push(decodeJson(m.data));
      },
    });
    await call(t.nats.nc, subjects.consoleOpen(HOST, 'mallory'), { domainId: dom, sessionId });
    expect(bridge.holdersOf(dom)).toEqual([sessionId]);
    await new Promise((r) => setTimeout(r, IDLE_MS + 300));
    expect(bridge.holdersOf(dom)).toEqual([]);
    expect(closes).toEqual([{ reason: 'idle', message: `no word from the client for ${IDLE_MS} ms` }]);
    // Its late word about the session gets the answer that it is gone.
    t.nats.nc.publish(subjects.consoleIn(HOST, sessionId), Buffer.from('late'));
    const end = Date.now() + 2000;
    while (closes.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(closes[1]).toEqual({ reason: 'closed', message: 'no such console session' });
    sub.unsubscribe();
    const next = await openConsole(t.nats, target(dom), { onData: () => undefined });
    await next.close();
  });

  it("refuses a guest that is not running here, a session id in use, and a malformed request, holding nothing", async () => {
    const dom = randomUUID();
    await expect(openConsole(t.nats, target(dom), { onData: () => undefined })).rejects.toMatchObject({
      code: 'operation-invalid',
      message: 'Requested operation is not valid: domain is not running',
    });
    running.add(dom);
    const sessionId = 'taken-session-id-0000000';
    await call(t.nats.nc, subjects.consoleOpen(HOST, 'x'), { domainId: dom, sessionId });
    await expect(call(t.nats.nc, subjects.consoleOpen(HOST, 'x'), { domainId: dom, sessionId, force: true })).rejects.toMatchObject({ code: 'invalid-arg' });
    await expect(call(t.nats.nc, subjects.consoleOpen(HOST, 'x'), { domainId: 'not-a-uuid', sessionId: 'x' })).rejects.toMatchObject({ code: 'invalid-arg' });
    expect(bridge.holdersOf(dom)).toEqual([sessionId]);
    // A host nobody serves: its agent is down.
    await expect(openConsole(t.nats, { hostId: 'host-gone', domainId: dom }, { onData: () => undefined, timeoutMs: 8000 })).rejects.toMatchObject({
      code: 'operation-failed',
      message: "operation failed: host 'host-gone' does not answer: is its agent running?",
    });
  }, 20_000);
});
