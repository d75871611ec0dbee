/** Holds the current config snapshot; handlers read it once per request, reloads swap it whole. */
export class ConfigHolder<T> {
  constructor(private snapshot: T) {}
  current(): T {
    return this.snapshot;
  }
  swap(next: T): void {
    this.snapshot = next;
  }
}
