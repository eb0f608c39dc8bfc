import { describe, expect, it } from 'vitest';
import { RECENT_COMMANDS, rememberCommand, versionOfCommand } from './recent-commands.ts';

describe('the commands an aggregate remembers', () => {
  it('keeps the first version a command produced, and forgets the oldest past the limit', () => {
    let recent = rememberCommand([], 'c1', 1);
    // A second event of the same command (one commit, several events) keeps the first version.
    recent = rememberCommand(recent, 'c1', 2);
    expect(versionOfCommand({ recentCommands: recent }, 'c1')).toBe(1);
    for (let i = 2; i <= RECENT_COMMANDS + 1; i++) recent = rememberCommand(recent, `c${i}`, i);
    expect(recent).toHaveLength(RECENT_COMMANDS);
    expect(versionOfCommand({ recentCommands: recent }, 'c1')).toBeUndefined();
    expect(versionOfCommand({ recentCommands: recent }, `c${RECENT_COMMANDS + 1}`)).toBe(RECENT_COMMANDS + 1);
  });
});
