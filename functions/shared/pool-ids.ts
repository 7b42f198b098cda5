/** Pool task ids: derived from the instruction, so the same instruction maps to one DynamoDB item. */
import { createHash } from 'node:crypto';

/** The comparison form of an instruction: whitespace collapsed, trimmed, lower-cased. */
export const instructionKey = (instruction: string) => instruction.replace(/\s+/g, ' ').trim().toLowerCase();

/** A 16-hex-digit id of the instruction's comparison form. */
export const taskId = (instruction: string) =>
  createHash('sha256').update(instructionKey(instruction)).digest('hex').slice(0, 16);
