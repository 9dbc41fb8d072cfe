/**
 * Typed arrays that grow as they fill (records, tables, pools): the one
 * place that copies an array into a larger one.
 */
type GrowableArray = Float64Array | Int32Array | Uint32Array | Uint8Array;

/** `bigger`, holding `old`'s elements at its start. */
export function grow<T extends GrowableArray>(old: T, bigger: T): T {
  bigger.set(old);
  return bigger;
}

/** `data` if it holds `needed` elements, else a copy twice as long (or `needed` long, if more). */
export function withRoom<T extends Float64Array>(data: T, needed: number): T | Float64Array<ArrayBuffer> {
  if (needed <= data.length) return data;
  const bigger = new Float64Array(Math.max(data.length * 2, needed));
  bigger.set(data);
  return bigger;
}
