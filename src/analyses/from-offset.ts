/**
 * A gate in front of consumers: they hear the flow only from a trace offset
 * on. FlowGuard's slow path decodes from the PSB before a window; on a
 * per-CPU stream that PSB can lie in another task's run, whose flow is not
 * the thread's (nor decodable with its image), so the thread's detectors
 * start at its run. Decoding with the stream's tasks, `running` also says
 * whether the task decoded now is the thread's (the boundary packets
 * around a switch are at the run's start offset, and must not be heard).
 */
import type { FlowConsumer } from '../flow/control-flow.js';

export function fromOffset(offset: () => number, start: number, consumers: readonly FlowConsumer[], running: () => boolean = () => true): FlowConsumer {
  let open = false;
  const isOpen = (): boolean => (open || (open = offset() >= start)) && running();
  const gate: FlowConsumer = {
    onEnd: () => {
      for (const c of consumers) c.onEnd?.();
    },
  };
  // Only the callbacks some consumer takes (the walker asks for instructions only if one needs them).
  const has = (m: keyof FlowConsumer): boolean => consumers.some((c) => typeof c[m] === 'function');
  if (has('onTransfer')) {
    gate.onTransfer = (kind, from, to, size, before, cr3) => {
      if (isOpen()) for (const c of consumers) c.onTransfer?.(kind, from, to, size, before, cr3);
    };
  }
  if (has('onInstruction')) {
    gate.onInstruction = (insn) => {
      if (isOpen()) for (const c of consumers) c.onInstruction?.(insn);
    };
  }
  if (has('onEvent')) {
    gate.onEvent = (ev) => {
      if (isOpen()) for (const c of consumers) c.onEvent?.(ev);
    };
  }
  if (has('onGap')) {
    gate.onGap = (kind, at) => {
      if (isOpen()) for (const c of consumers) c.onGap?.(kind, at);
    };
  }
  if (has('onError')) {
    gate.onError = (code, at, ip) => {
      if (isOpen()) for (const c of consumers) c.onError?.(code, at, ip);
    };
  }
  return gate;
}
