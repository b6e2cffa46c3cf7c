#include "patterns.h"

static const char *const reason_codes[] = {
#define BNF_REASON_CODE(id, code, text) code,
	BNF_REASONS(BNF_REASON_CODE)
#undef BNF_REASON_CODE
};
static const char *const reason_texts[] = {
#define BNF_REASON_TEXT(id, code, text) text,
	BNF_REASONS(BNF_REASON_TEXT)
#undef BNF_REASON_TEXT
};

const char *bnf_reason_code(bnf_reason r)
{
	return (unsigned)r < BNF_REASON_COUNT ? reason_codes[r] : "unknown";
}

const char *bnf_reason_text(bnf_reason r)
{
	return (unsigned)r < BNF_REASON_COUNT ? reason_texts[r] : "";
}

static const bnf_pattern_row rows[BNF_PAT_COUNT] = {
#define BNF_PATTERN_ROW(id, name, layer, op, before) [id] = {name, layer, op, before},
	BNF_PATTERNS(BNF_PATTERN_ROW)
#undef BNF_PATTERN_ROW
};

const bnf_pattern_row *bnf_pattern_info(bnf_pattern p)
{
	return &rows[(unsigned)p < BNF_PAT_COUNT ? p : 0];
}

const char *bnf_pattern_name(bnf_pattern p)
{
	return (unsigned)p < BNF_PAT_COUNT ? rows[p].name : "none";
}

bnf_pattern bnf_pattern_find(bnf_layer_kind layer, bnf_op_kind op, bool before_layer)
{
	for (int p = 0; p < BNF_PAT_COUNT; p++)
		if (rows[p].layer == layer && rows[p].op == op && rows[p].before_layer == before_layer)
			return (bnf_pattern)p;
	return BNF_PAT_NONE;
}

const char *bnf_layer_op_type(bnf_layer_kind k)
{
	static const char *const names[] = {"", "Conv", "ConvTranspose", "Gemm", "MatMul"};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "";
}

const char *bnf_op_type(bnf_op_kind k)
{
	static const char *const names[] = {"BatchNormalization", "Mul", "Add"};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "";
}
