/**
 * A heap object the program allocated in the analysed window (its malloc,
 * calloc or realloc call returned it), as [start, end) of the chunk's
 * usable bytes, with the window indices of its allocation and free.
 */
export interface HeapChunk {
  start: number;
  end: number;
  allocatedAt: number;
  /** -1 while not freed. */
  freedAt: number;
}
