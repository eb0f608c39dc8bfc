import { join } from 'node:path';
import type { ObservedState } from '../../contracts/domain/state.ts';
import type { DomainObservation } from '../hypervisor.ts';
import type { Domain } from './guest.ts';
import type { QemuDriverOptions } from './options.ts';
import type { QmpClient } from './qmp.ts';

/** What the QEMU driver's parts share: its options and the guests it looks after. */
export interface QemuContext {
  readonly opts: QemuDriverOptions;
  /** `<stateDir>/qemu`, a directory per domain. */
  readonly qemuDir: string;
  readonly domains: Map<string, Domain>;
  /** How domains that are no longer running ended, for state() and idempotent stops. */
  readonly stopped: Map<string, ObservedState>;
  readonly locks: Map<string, Promise<unknown>>;
  readonly listeners: Set<(o: DomainObservation) => void>;
  readonly reservedPorts: Set<number>;
  closed: boolean;
  saveSeq: number;
  /** Watches a monitor connection: its events and its closing (guest-events.ts). */
  attach(d: Domain, qmp: QmpClient): void;
}

export function newContext(opts: QemuDriverOptions, attach: (ctx: QemuContext, d: Domain, qmp: QmpClient) => void): QemuContext {
  const ctx: QemuContext = {
    opts,
    qemuDir: join(opts.stateDir, 'qemu'),
    domains: new Map(),
    stopped: new Map(),
    locks: new Map(),
    listeners: new Set(),
    reservedPorts: new Set(),
    closed: false,
    saveSeq: 0,
    attach: (d, qmp) => attach(ctx, d, qmp),
  };
  return ctx;
}

export const domainDir = (ctx: QemuContext, uuid: string): string => join(ctx.qemuDir, uuid);

export function withLock<T>(ctx: QemuContext, uuid: string, fn: () => Promise<T>): Promise<T> {
  const prev = ctx.locks.get(uuid) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.then(
    () => undefined,
    () => undefined,
  );
  ctx.locks.set(uuid, tail);
  void tail.then(() => {
    if (ctx.locks.get(uuid) === tail) ctx.locks.delete(uuid);
  });
  return next;
}

export function emit(ctx: QemuContext, d: Domain, s: ObservedState, cause: string): void {
  if (ctx.closed) return;
  const o: DomainObservation = { uuid: d.uuid, state: s.state, reason: s.reason, cause };
  for (const l of [...ctx.listeners]) {
    try {
      l(o);
    } catch {
      // One subscriber's failure must not hide the change from the others.
    }
  }
}
