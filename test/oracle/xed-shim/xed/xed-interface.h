/*
 * A stand-in for the few parts of Intel XED that libipt's ptxed uses, so
 * that ptxed can be built as a test oracle where XED is not packaged.
 *
 * Instruction lengths, branch displacements and the instruction classes
 * ptxed's --check compares come from libipt's own instruction length
 * decoder (pt_ild), which xed-shim.c compiles in. There is no
 * disassembler: the oracle runs ptxed with --no-inst, and an instruction
 * that ptxed would print reads "<insn>".
 */
#ifndef PTSCOPE_XED_SHIM_H
#define PTSCOPE_XED_SHIM_H

#include <stdint.h>

typedef unsigned int xed_uint_t;
typedef int xed_bool_t;

typedef enum {
	XED_MACHINE_MODE_INVALID,
	XED_MACHINE_MODE_LEGACY_16,
	XED_MACHINE_MODE_LEGACY_32,
	XED_MACHINE_MODE_LONG_64
} xed_machine_mode_enum_t;

typedef enum {
	XED_ADDRESS_WIDTH_INVALID = 0,
	XED_ADDRESS_WIDTH_16b = 2,
	XED_ADDRESS_WIDTH_32b = 4,
	XED_ADDRESS_WIDTH_64b = 8
} xed_address_width_enum_t;

typedef enum {
	XED_ERROR_NONE,
	XED_ERROR_GENERAL_ERROR
} xed_error_enum_t;

typedef enum {
	XED_ICLASS_INVALID,
	XED_ICLASS_OTHER,
	XED_ICLASS_CALL_NEAR,
	XED_ICLASS_CALL_FAR,
	XED_ICLASS_RET_NEAR,
	XED_ICLASS_RET_FAR,
	XED_ICLASS_JMP,
	XED_ICLASS_JMP_FAR,
	XED_ICLASS_JMPABS,
	XED_ICLASS_JB, XED_ICLASS_JBE, XED_ICLASS_JCXZ, XED_ICLASS_JECXZ,
	XED_ICLASS_JL, XED_ICLASS_JLE, XED_ICLASS_JNB, XED_ICLASS_JNBE,
	XED_ICLASS_JNL, XED_ICLASS_JNLE, XED_ICLASS_JNO, XED_ICLASS_JNP,
	XED_ICLASS_JNS, XED_ICLASS_JNZ, XED_ICLASS_JO, XED_ICLASS_JP,
	XED_ICLASS_JRCXZ, XED_ICLASS_JS, XED_ICLASS_JZ,
	XED_ICLASS_LOOP, XED_ICLASS_LOOPE, XED_ICLASS_LOOPNE,
	XED_ICLASS_INT, XED_ICLASS_INT1, XED_ICLASS_INT3, XED_ICLASS_INTO,
	XED_ICLASS_IRET, XED_ICLASS_IRETD, XED_ICLASS_IRETQ,
	XED_ICLASS_SYSCALL, XED_ICLASS_SYSCALL_AMD, XED_ICLASS_SYSCALL_32,
	XED_ICLASS_SYSENTER, XED_ICLASS_SYSEXIT,
	XED_ICLASS_SYSRET, XED_ICLASS_SYSRET64, XED_ICLASS_SYSRET_AMD,
	XED_ICLASS_VMLAUNCH, XED_ICLASS_VMRESUME, XED_ICLASS_VMCALL,
	XED_ICLASS_PTWRITE, XED_ICLASS_UIRET, XED_ICLASS_ERETS,
	XED_ICLASS_ERETU
} xed_iclass_enum_t;

#define XED_ICLASS_JMPABS_DEFINED 1
#define XED_ICLASS_ERETS_DEFINED 1
#define XED_ICLASS_ERETU_DEFINED 1
#define XED_ICLASS_SYSCALL_AMD_DEFINED 1
#define XED_ICLASS_SYSCALL_32_DEFINED 1

typedef enum {
	XED_SYNTAX_INTEL,
	XED_SYNTAX_ATT
} xed_syntax_enum_t;

typedef struct {
	xed_machine_mode_enum_t mode;
	xed_address_width_enum_t width;
} xed_state_t;

typedef struct {
	xed_state_t state;
	xed_uint_t length;
	xed_uint_t disp_width;
	int64_t displacement;
	xed_iclass_enum_t iclass;
	xed_bool_t valid;
} xed_decoded_inst_t;

typedef struct {
	const xed_decoded_inst_t *p;
	char *buf;
	int blen;
	uint64_t runtime_address;
	xed_syntax_enum_t syntax;
} xed_print_info_t;

void xed_tables_init(void);
void xed_state_init2(xed_state_t *state, xed_machine_mode_enum_t mode,
		     xed_address_width_enum_t width);
void xed_decoded_inst_zero_set_mode(xed_decoded_inst_t *inst,
				    const xed_state_t *state);
xed_error_enum_t xed_decode(xed_decoded_inst_t *inst, const uint8_t *bytes,
			    unsigned int length);
xed_uint_t xed_decoded_inst_get_length(const xed_decoded_inst_t *inst);
xed_uint_t xed_decoded_inst_get_branch_displacement_width(
	const xed_decoded_inst_t *inst);
int64_t xed_decoded_inst_get_branch_displacement(
	const xed_decoded_inst_t *inst);
xed_iclass_enum_t xed_decoded_inst_get_iclass(const xed_decoded_inst_t *inst);
xed_bool_t xed_decoded_inst_valid(const xed_decoded_inst_t *inst);
const char *xed_error_enum_t2str(xed_error_enum_t err);
const char *xed_iclass_enum_t2str(xed_iclass_enum_t iclass);
void xed_init_print_info(xed_print_info_t *pi);
xed_bool_t xed_format_generic(xed_print_info_t *pi);

#endif /* PTSCOPE_XED_SHIM_H */
