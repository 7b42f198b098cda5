/**
 * One process at a time opens a local data folder: LevelDB (under dynalite) holds an exclusive lock on
 * it, and a second process would fail deep inside dynalite. The process that opens the folder writes
 * `<dataDir>/.lock` with its pid and what it is doing (e.g. `run run-…`), so a second one stops at once
 * and names it. A lock whose process is gone (a crash, a kill) is stale and taken over.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { DataFolderBusy } from '../../functions/shared/errors.ts';

/** What the lock file says. */
export interface LockInfo {
  pid: number;
  /** What the holder is doing, e.g. `run run-20261130-144410-y1e1`, `export`, `report`. */
  holder: string;
  host: string;
  startedAt: string;
}

const LOCK_FILE = '.lock';

/** The path of a data folder's lock file. */
export const lockPath = (dataDir: string) => path.join(dataDir, LOCK_FILE);

/** The lock of a data folder, when some process holds it (a stale lock reads as none). */
export function readLock(dataDir: string): LockInfo | undefined {
  let info: LockInfo;
  try {
    info = JSON.parse(readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
  } catch {
    return undefined; // missing, or half-written by a process that died at once
  }
  return info.host === hostname() && !isAlive(info.pid) ? undefined : info;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM'; // alive, another user's
  }
}

/**
 * Takes the data folder's lock for this process (creating the folder), or throws `DataFolderBusy`
 * naming the process that holds it. With `fresh`, the folder's content is deleted once the lock is
 * held, never under another process. Returns the function that gives the lock up.
 */
export function lockDataFolder(
  dataDir: string,
  { holder, fresh = false }: { holder: string; fresh?: boolean },
): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = lockPath(dataDir);
  const mine: LockInfo = { pid: process.pid, holder, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, `${JSON.stringify(mine)}\n`, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      const other = readLock(dataDir);
      if (other) throw busy(dataDir, other);
      if (attempt > 0) throw busy(dataDir, undefined);
      rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  if (fresh) {
    for (const entry of readdirSync(dataDir)) {
      if (entry !== LOCK_FILE) rmSync(path.join(dataDir, entry), { recursive: true, force: true });
    }
  }
  return () => {
    try {
      const current = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
      if (current.pid === mine.pid && current.startedAt === mine.startedAt) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}

function busy(dataDir: string, other: LockInfo | undefined): DataFolderBusy {
  const who = other
    ? `${other.holder} (pid ${other.pid}${other.host === hostname() ? '' : ` on ${other.host}`}, since ${other.startedAt})`
    : 'another process';
  return new DataFolderBusy(
    `the data folder ${dataDir} is in use by ${who}: wait for it to end, or use another --data-dir` +
      (other && other.host !== hostname() ? ` (or delete ${lockPath(dataDir)} if that process is gone)` : ''),
  );
}
