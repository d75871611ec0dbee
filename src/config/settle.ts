/** One read of the config files: what it made (or the error it made) and a fingerprint of what it read. */
export interface FileRead<T> {
  /** Equal keys mean equal contents; a read that failed keys its error. */
  readonly key: string;
  readonly result: T;
}

export interface SettleOptions {
  /** The key of what is loaded now: a read equal to it is no change and returns at once. */
  readonly known: string;
  /** Pause between two reads; 0 returns the first read. */
  readonly settleMs: number;
  /** Reads after the first, at most: a file that never stops changing is taken as last read. */
  readonly maxRereads: number;
  readonly sleep: (ms: number) => Promise<void>;
}

/**
 * Reads until two reads `settleMs` apart agree, and returns the last. A writer that truncates and then writes (an
 * editor saving in place, `cat > file`, scp, a slow copy) leaves for a moment a file that may still parse: cut at a
 * line boundary, a descriptor file loses its last limits, and portcullis.yaml its last sections. Such a state does not
 * outlive the writer's pause, so it never agrees with the next read, and is not applied. An unchanged read costs one
 * read as before; a change costs `settleMs` and one more read.
 */
export async function readSettled<T>(read: () => Promise<FileRead<T>>, options: SettleOptions): Promise<FileRead<T>> {
  let last = await read();
  if (last.key === options.known || options.settleMs <= 0) return last;
  for (let i = 0; i < options.maxRereads; i++) {
    await options.sleep(options.settleMs);
    const next = await read();
    if (next.key === last.key) return next;
    last = next;
  }
  return last;
}
