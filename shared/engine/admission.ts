import type { CommandEnvelope } from '../types';

/** enqueueCommands takes the commands of one token only (one POST's); anything else is a bug. */
export function assertOneToken(commands: CommandEnvelope[]): void {
  const sub = commands[0]?.sub;
  if (commands.some((command) => command.sub !== sub)) {
    throw new RangeError('enqueueCommands: every command must have the same sub');
  }
}

export function validateMaxPerToken(maxPerToken: number | undefined): void {
  if (maxPerToken !== undefined && (!Number.isInteger(maxPerToken) || maxPerToken < 1)) {
    throw new RangeError(`maxPerToken must be a positive integer, got ${maxPerToken}`);
  }
}
