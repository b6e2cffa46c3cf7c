#include "report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tensor.h"

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* epsilon is a float attribute: report the shortest decimal that reads
 * back as the same float (1e-05, not 9.99999974737875e-06). */
static double shortest_float(double x)
{
	char buf[32];
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, x);
		if ((float)strtod(buf, NULL) == (float)x)
			return strtod(buf, NULL);
	}
	return x;
}

/* A number that may be infinite (a fusion that could not be modelled):
 * JSON has no infinity, so null. */
static cJSON *number_or_null(double x)
{
	return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

static bool add_verify(cJSON *e, const bnf_verify *v)
{
	cJSON *o = cJSON_AddObjectToObject(e, "verify");
	if (!o)
		return false;
	cJSON_AddBoolToObject(o, "ok", v->ok);
	cJSON_AddItemToObject(o, "max_abs_err", number_or_null(v->max_abs_err));
	cJSON_AddItemToObject(o, "max_rel_err", number_or_null(v->max_rel_err));
	cJSON_AddNumberToObject(o, "tolerance", v->tolerance);
	cJSON_AddNumberToObject(o, "outputs", (double)v->outputs);
	cJSON_AddNumberToObject(o, "terms", (double)v->terms);
	cJSON_AddNumberToObject(o, "worst_channel", (double)v->worst_channel);
	if (v->problem)
		cJSON_AddStringToObject(o, "problem", v->problem);
	return true;
}

/* Totals over every verified fusion (BN and Mul/Add). */
static bool add_verify_summary(cJSON *root, const bnf_result *r)
{
	cJSON *o = cJSON_AddObjectToObject(root, "verify");
	double abs_err = 0, rel_err = 0, worst_ratio = 0;
	if (!o)
		return false;
	for (size_t i = 0; i < r->n_fusions; i++) {
		const bnf_verify *v = &r->fusions[i].verify;
		if (!r->fusions[i].verified)
			continue;
		abs_err = fmax(abs_err, v->max_abs_err);
		rel_err = fmax(rel_err, v->max_rel_err);
		worst_ratio = fmax(worst_ratio, v->tolerance > 0 ? v->max_rel_err / v->tolerance
								 : v->max_rel_err > 0 ? INFINITY : 0);
	}
	cJSON_AddNumberToObject(o, "checked", (double)bnf_result_verified(r));
	cJSON_AddNumberToObject(o, "failed", (double)bnf_result_verify_failed(r));
	cJSON_AddItemToObject(o, "max_abs_err", number_or_null(abs_err));
	cJSON_AddItemToObject(o, "max_rel_err", number_or_null(rel_err));
	cJSON_AddItemToObject(o, "worst_ratio", number_or_null(worst_ratio));
	return true;
}

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0 (RFC 3629:
 * no overlong forms, surrogates or code points above U+10FFFF). */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* JSON must be UTF-8, but names in a model are bytes: cJSON copies them
 * as they are, so each byte that is not part of valid UTF-8 becomes
 * \ufffd (it can only be inside a string).  Frees text; NULL on no memory. */
static char *utf8_repair(char *text)
{
	size_t bad = 0, len = 0, n;
	char *out, *o;
	for (const unsigned char *p = (const unsigned char *)text; *p; p += n, len += n)
		if (!(n = utf8_len(p)))
			bad++, n = 1;
	if (!bad)
		return text;
	if ((out = malloc(len + 5 * bad + 1))) {
		o = out;
		for (const unsigned char *p = (const unsigned char *)text; *p; p += n) {
			if (!(n = utf8_len(p))) {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				n = 1;
			} else {
				memcpy(o, p, n);
				o += n;
			}
		}
		*o = '\0';
	}
	cJSON_free(text);
	return out;
}

/* The entry's head: input and output, model, counts.  The tool and the
 * options belong to the document the program wraps around its entries. */
static void add_head(cJSON *root, const bnf_result *r, const char *input, const char *output)
{
	cJSON *o;
	cJSON_AddStringToObject(root, "input", input);
	cJSON_AddItemToObject(root, "output", str_or_null(output));

	o = cJSON_AddObjectToObject(root, "model");
	cJSON_AddNumberToObject(o, "ir_version", (double)r->ir_version);
	if (r->opset >= 0)
		cJSON_AddNumberToObject(o, "opset", (double)r->opset);
	else
		cJSON_AddNullToObject(o, "opset");
	cJSON_AddStringToObject(o, "producer_name", r->producer_name ? r->producer_name : "");
	cJSON_AddStringToObject(o, "producer_version", r->producer_version ? r->producer_version : "");

	o = cJSON_AddObjectToObject(root, "counts");
	cJSON_AddNumberToObject(o, "bn_found", (double)r->bn_found);
	cJSON_AddNumberToObject(o, "folded", (double)bnf_result_bn_folded(r));
	cJSON_AddNumberToObject(o, "affine_folded", (double)(r->n_fusions - bnf_result_bn_folded(r)));
	cJSON_AddNumberToObject(o, "skipped", (double)bnf_result_bn_skipped(r));
	cJSON_AddNumberToObject(o, "affine_skipped", (double)(r->n_skips - bnf_result_bn_skipped(r)));
	cJSON_AddNumberToObject(o, "nodes_before", (double)r->nodes_before);
	cJSON_AddNumberToObject(o, "nodes_after", (double)r->nodes_after);
	cJSON_AddNumberToObject(o, "graph_inputs_removed", (double)r->inputs_removed);
}

/* One fusion's entry (BN fusions and Mul/Add fusions differ in a few
 * names); false when memory runs out. */
static bool add_fusion(cJSON *e, const bnf_fusion *f, bool is_bn)
{
	cJSON_AddStringToObject(e, "pattern", bnf_pattern_name(f->pattern));
	cJSON_AddStringToObject(e, "graph", f->graph);
	cJSON_AddStringToObject(e, "layer", f->layer);
	cJSON_AddStringToObject(e, "layer_label", f->layer_label);
	cJSON_AddStringToObject(e, "layer_op", f->layer_op);
	cJSON_AddItemToObject(e, "rewritten_as",
			      strcmp(f->layer_op, f->layer_op_after) ? cJSON_CreateString(f->layer_op_after)
								     : cJSON_CreateNull());
	if (is_bn) {
		cJSON_AddStringToObject(e, "bn", f->bn);
		cJSON_AddStringToObject(e, "bn_label", f->bn_label);
		cJSON_AddStringToObject(e, "bn_output", f->bn_output);
	} else {
		cJSON_AddStringToObject(e, "node", f->bn);
		cJSON_AddStringToObject(e, "node_label", f->bn_label);
		cJSON_AddStringToObject(e, "node_op", f->node_op);
		cJSON_AddStringToObject(e, "output", f->bn_output);
	}
	cJSON_AddNumberToObject(e, "channels", (double)f->channels);
	cJSON_AddStringToObject(e, "dtype", bnf_dtype_name(f->dtype));
	if (is_bn)
		cJSON_AddNumberToObject(e, "epsilon", shortest_float(f->eps));
	cJSON_AddStringToObject(e, "weight", f->weight);
	cJSON_AddStringToObject(e, "bias", f->bias);
	cJSON_AddBoolToObject(e, "bias_created", f->bias_created);
	cJSON_AddBoolToObject(e, "weight_copied", f->weight_copied);
	return !f->verified || add_verify(e, &f->verify);
}

/* The BNs left in place ("skipped"), and the Mul/Add nodes next to a
 * layer left in place ("affine_skipped"); false when memory runs out. */
static bool add_skips(cJSON *root, const bnf_result *r)
{
	cJSON *arr = cJSON_AddArrayToObject(root, "skipped");
	cJSON *aff = cJSON_AddArrayToObject(root, "affine_skipped");
	for (size_t i = 0; arr && aff && i < r->n_skips; i++) {
		const bnf_skip *s = &r->skips[i];
		bool bn = s->op == BNF_OP_BN;
		cJSON *e = cJSON_CreateObject();
		if (!e || !cJSON_AddItemToArray(bn ? arr : aff, e))
			return false;
		cJSON_AddStringToObject(e, "graph", s->graph);
		cJSON_AddStringToObject(e, bn ? "bn" : "node", s->bn);
		cJSON_AddStringToObject(e, bn ? "bn_label" : "node_label", s->bn_label);
		if (!bn)
			cJSON_AddStringToObject(e, "node_op", bnf_op_type(s->op));
		cJSON_AddStringToObject(e, bn ? "bn_output" : "output", s->bn_output);
		cJSON_AddItemToObject(e, "layer", str_or_null(s->layer));
		cJSON_AddItemToObject(e, "layer_label", str_or_null(s->layer_label));
		cJSON_AddStringToObject(e, "reason", bnf_reason_code(s->reason));
		cJSON_AddStringToObject(e, "message", s->message);
	}
	return arr && aff;
}

char *bnf_report_json(const bnf_result *r, const char *input, const char *output)
{
	cJSON *root = cJSON_CreateObject(), *arr, *aff;
	char *text = NULL;

	if (!root)
		goto oom;
	add_head(root, r, input, output);
	arr = cJSON_AddArrayToObject(root, "fusions");
	aff = cJSON_AddArrayToObject(root, "affine_fusions");
	for (size_t i = 0; arr && aff && i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		cJSON *e = cJSON_CreateObject();
		bool is_bn = bnf_fusion_is_bn(f);
		if (!e || !cJSON_AddItemToArray(is_bn ? arr : aff, e) || !add_fusion(e, f, is_bn))
			goto oom;
	}
	if (r->verify && !add_verify_summary(root, r))
		goto oom;
	if (!add_skips(root, r))
		goto oom;
	text = cJSON_Print(root);
	if (!text || !(text = utf8_repair(text)))
		goto oom;
	cJSON_Delete(root);
	return text;
oom:
	cJSON_Delete(root);
	return NULL;
}
