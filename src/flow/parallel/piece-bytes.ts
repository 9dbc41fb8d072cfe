/**
 * A worker's buffer for the trace bytes of the piece it decodes, kept from
 * piece to piece. Nothing of a piece's decode outlives the piece (its
 * result is copied to the main thread), and a new buffer per piece costs a
 * page fault per 4 KiB page as it is filled: about 0.25 s of CPU per worker
 * on 71 MB of trace, more than the read itself.
 */
export class PieceBytes {
  private buffer = new Uint8Array(0);

  /** A view of `length` bytes, valid until the next call. */
  take(length: number): Uint8Array {
    if (this.buffer.length < length) this.buffer = new Uint8Array(length);
    return this.buffer.subarray(0, length);
  }
}
