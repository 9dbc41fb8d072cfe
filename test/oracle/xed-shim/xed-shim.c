/*
 * The XED stand-in for building libipt's ptxed as a test oracle (see
 * xed/xed-interface.h). Decoding is libipt's pt_ild: this file is compiled
 * together with libipt's pt_ild.c from the libipt sources.
 */
#include "xed/xed-interface.h"

#include "pt_ild.h"
#include "pt_insn.h"

#include <string.h>
#include <stdio.h>

void xed_tables_init(void) {}

void xed_state_init2(xed_state_t *state, xed_machine_mode_enum_t mode,
		     xed_address_width_enum_t width)
{
	state->mode = mode;
	state->width = width;
}

void xed_decoded_inst_zero_set_mode(xed_decoded_inst_t *inst,
				    const xed_state_t *state)
{
	memset(inst, 0, sizeof(*inst));
	inst->state = *state;
}

static enum pt_exec_mode pt_mode(xed_machine_mode_enum_t mode)
{
	switch (mode) {
	case XED_MACHINE_MODE_LEGACY_16:
		return ptem_16bit;
	case XED_MACHINE_MODE_LEGACY_32:
		return ptem_32bit;
	case XED_MACHINE_MODE_LONG_64:
		return ptem_64bit;
	default:
		return ptem_unknown;
	}
}

static xed_iclass_enum_t xed_class(pti_inst_enum_t iclass)
{
	switch (iclass) {
	case PTI_INST_CALL_9A:
	case PTI_INST_CALL_FFr3:
		return XED_ICLASS_CALL_FAR;
	case PTI_INST_CALL_FFr2:
	case PTI_INST_CALL_E8:
		return XED_ICLASS_CALL_NEAR;
	case PTI_INST_INT:
		return XED_ICLASS_INT;
	case PTI_INST_INT3:
		return XED_ICLASS_INT3;
	case PTI_INST_INT1:
		return XED_ICLASS_INT1;
	case PTI_INST_INTO:
		return XED_ICLASS_INTO;
	case PTI_INST_IRET:
		return XED_ICLASS_IRET;
	case PTI_INST_JMP_E9:
	case PTI_INST_JMP_EB:
	case PTI_INST_JMP_FFr4:
		return XED_ICLASS_JMP;
	case PTI_INST_JMP_EA:
	case PTI_INST_JMP_FFr5:
		return XED_ICLASS_JMP_FAR;
	case PTI_INST_JCC:
		return XED_ICLASS_JZ;
	case PTI_INST_JrCXZ:
		return XED_ICLASS_JRCXZ;
	case PTI_INST_LOOP:
		return XED_ICLASS_LOOP;
	case PTI_INST_LOOPE:
		return XED_ICLASS_LOOPE;
	case PTI_INST_LOOPNE:
		return XED_ICLASS_LOOPNE;
	case PTI_INST_RET_C3:
	case PTI_INST_RET_C2:
		return XED_ICLASS_RET_NEAR;
	case PTI_INST_RET_CB:
	case PTI_INST_RET_CA:
		return XED_ICLASS_RET_FAR;
	case PTI_INST_SYSCALL:
		return XED_ICLASS_SYSCALL;
	case PTI_INST_SYSENTER:
		return XED_ICLASS_SYSENTER;
	case PTI_INST_SYSEXIT:
		return XED_ICLASS_SYSEXIT;
	case PTI_INST_SYSRET:
		return XED_ICLASS_SYSRET;
	case PTI_INST_VMLAUNCH:
		return XED_ICLASS_VMLAUNCH;
	case PTI_INST_VMRESUME:
		return XED_ICLASS_VMRESUME;
	case PTI_INST_VMCALL:
		return XED_ICLASS_VMCALL;
	case PTI_INST_PTWRITE:
		return XED_ICLASS_PTWRITE;
	case PTI_INST_UIRET:
		return XED_ICLASS_UIRET;
	case PTI_INST_ERETS:
		return XED_ICLASS_ERETS;
	case PTI_INST_ERETU:
		return XED_ICLASS_ERETU;
	case PTI_INST_JMPABS:
		return XED_ICLASS_JMPABS;
	default:
		return XED_ICLASS_OTHER;
	}
}

/* Near relative branches: the ones XED reports a branch displacement for. */
static int has_displacement(pti_inst_enum_t iclass)
{
	switch (iclass) {
	case PTI_INST_CALL_E8:
	case PTI_INST_JMP_E9:
	case PTI_INST_JMP_EB:
	case PTI_INST_JCC:
	case PTI_INST_JrCXZ:
	case PTI_INST_LOOP:
	case PTI_INST_LOOPE:
	case PTI_INST_LOOPNE:
		return 1;
	default:
		return 0;
	}
}

xed_error_enum_t xed_decode(xed_decoded_inst_t *inst, const uint8_t *bytes,
			    unsigned int length)
{
	struct pt_insn insn;
	struct pt_insn_ext iext;

	memset(&insn, 0, sizeof(insn));
	memset(&iext, 0, sizeof(iext));
	if (length > sizeof(insn.raw))
		length = sizeof(insn.raw);
	memcpy(insn.raw, bytes, length);
	insn.size = (uint8_t) length;
	insn.mode = pt_mode(inst->state.mode);

	if (pt_ild_decode(&insn, &iext) < 0)
		return XED_ERROR_GENERAL_ERROR;

	inst->length = insn.size;
	inst->iclass = xed_class(iext.iclass);
	inst->valid = 1;
	if (has_displacement(iext.iclass)) {
		inst->disp_width = 4;
		inst->displacement = iext.variant.branch.displacement;
	}
	return XED_ERROR_NONE;
}

xed_uint_t xed_decoded_inst_get_length(const xed_decoded_inst_t *inst)
{
	return inst->length;
}

xed_uint_t xed_decoded_inst_get_branch_displacement_width(
	const xed_decoded_inst_t *inst)
{
	return inst->disp_width;
}

int64_t xed_decoded_inst_get_branch_displacement(const xed_decoded_inst_t *inst)
{
	return inst->displacement;
}

xed_iclass_enum_t xed_decoded_inst_get_iclass(const xed_decoded_inst_t *inst)
{
	return inst->iclass;
}

xed_bool_t xed_decoded_inst_valid(const xed_decoded_inst_t *inst)
{
	return inst->valid;
}

const char *xed_error_enum_t2str(xed_error_enum_t err)
{
	return err == XED_ERROR_NONE ? "NONE" : "GENERAL_ERROR";
}

const char *xed_iclass_enum_t2str(xed_iclass_enum_t iclass)
{
	(void) iclass;
	return "ICLASS";
}

void xed_init_print_info(xed_print_info_t *pi)
{
	memset(pi, 0, sizeof(*pi));
}

xed_bool_t xed_format_generic(xed_print_info_t *pi)
{
	snprintf(pi->buf, (size_t) pi->blen, "<insn>");
	return 1;
}
