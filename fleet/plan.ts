/**
 * Which domain goes where, decided up front so every run of a size is the same fleet: domain i on
 * host i mod H, and on each host the same share of HA domains and of running ones (by the domain's
 * slot on its host, so small fleets get their share too).
 */
export interface PlannedDomain {
  index: number;
  name: string;
  /** Where it was defined: the planned host, or where the scheduler put it if that host was lost. */
  hostId: string;
  ha: boolean;
  running: boolean;
}

export const hostIdOf = (i: number): string => `sim-${String(i).padStart(5, '0')}`;

/** True for the slots where the running total of `share` per slot crosses a whole number. */
const takes = (slot: number, share: number): boolean => Math.floor((slot + 1) * share + 1e-9) > Math.floor(slot * share + 1e-9);

export const planDomains = (hosts: number, domains: number, haShare: number, runningShare: number): PlannedDomain[] =>
  Array.from({ length: domains }, (_, index) => {
    const slot = Math.floor(index / hosts);
    const ha = takes(slot, haShare);
    return { index, name: `vm-${String(index).padStart(6, '0')}`, hostId: hostIdOf(index % hosts), ha, running: ha || takes(slot, runningShare) };
  });
