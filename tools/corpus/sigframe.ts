/**
 * A forged x86-64 Linux signal frame for sigreturn-oriented programming.
 *
 * `rt_sigreturn` (syscall 15) reads `struct rt_sigframe` at rsp - 8: the
 * return-address slot `pretcode`, then `struct ucontext` at rsp. Layouts from
 * the Linux UAPI headers (asm/ucontext.h, asm/sigcontext.h), which qemu-user
 * mirrors (linux-user/i386/signal.c):
 *   ucontext: uc_flags 0, uc_link 8, uc_stack 16 (24 bytes), uc_mcontext 40,
 *             uc_sigmask 296; 304 bytes read.
 *   sigcontext (at 40): r8..r15 (0..56), rdi 64, rsi 72, rbp 80, rbx 88,
 *             rdx 96, rax 104, rcx 112, rsp 120, rip 128, eflags 136,
 *             cs/gs/fs/ss (u16 each) 144, err 152, trapno 160, oldmask 168,
 *             cr2 176, fpstate 184 (0: no FPU state to restore), reserved.
 * uc_flags = 0 and fpstate = 0 keep the kernel from reading anything else;
 * cs must be the 64-bit user code selector (0x33) and ss the user data one
 * (0x2b), or the return traps.
 */
export const SIGFRAME_SIZE = 304;
export const USER_CS = 0x33;
export const USER_SS = 0x2b;

const MCONTEXT = 40;
const REG_OFFSET = {
  r8: 0, r9: 8, r10: 16, r11: 24, r12: 32, r13: 40, r14: 48, r15: 56,
  rdi: 64, rsi: 72, rbp: 80, rbx: 88, rdx: 96, rax: 104, rcx: 112, rsp: 120,
  rip: 128, eflags: 136,
} as const;
const SEGMENTS = 144;

export type SigframeReg = keyof typeof REG_OFFSET;

/** The bytes that must follow the `syscall` gadget's slot on the stack. */
export function sigreturnFrame(regs: Partial<Record<SigframeReg, number | bigint>>): Buffer {
  const frame = Buffer.alloc(SIGFRAME_SIZE);
  for (const [name, value] of Object.entries(regs)) {
    frame.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), MCONTEXT + REG_OFFSET[name as SigframeReg]);
  }
  if (regs.eflags === undefined) frame.writeBigUInt64LE(0x202n, MCONTEXT + REG_OFFSET.eflags);
  frame.writeUInt16LE(USER_CS, MCONTEXT + SEGMENTS);
  frame.writeUInt16LE(USER_SS, MCONTEXT + SEGMENTS + 6);
  return frame;
}
