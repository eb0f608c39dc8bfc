/**
 * The command ids an aggregate remembers, each with the version it produced: a command retried
 * after the event store's duplicate window is still recognised, and answered with what the first one
 * did. Every aggregate keeps the same number, so a retry's fate does not depend on what it names.
 */
export type RecentCommands = Array<[string, number]>;

export const RECENT_COMMANDS = 64;

/** `recent` with `commandId` remembered at `version`, the oldest forgotten past the limit. */
export const rememberCommand = (recent: RecentCommands, commandId: string, version: number): RecentCommands =>
  recent.some(([id]) => id === commandId) ? recent : [...recent, [commandId, version] as [string, number]].slice(-RECENT_COMMANDS);

/** The version a remembered command produced, if it is remembered. */
export const versionOfCommand = (s: { recentCommands: RecentCommands }, commandId: string): number | undefined =>
  s.recentCommands.find(([id]) => id === commandId)?.[1];
