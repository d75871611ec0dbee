/**
 * Rate limit windows are epoch aligned, so a sequence of requests that straddles a window edge would see its counter
 * reset. Waits until at least `needed` seconds are left in the current window of `windowSeconds`.
 */
export async function awayFromWindowEdge(windowSeconds: number, needed = 8): Promise<void> {
  const nowMs = Date.now();
  const leftMs = windowSeconds * 1000 - (nowMs % (windowSeconds * 1000));
  if (leftMs < needed * 1000) await new Promise((resolve) => setTimeout(resolve, leftMs + 250));
}
