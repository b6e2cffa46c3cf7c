/* bnfold_result: the internal result of a call with its public views
 * (counts, fusions, skips, the JSON report), and how a call ends. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "report.h"
#include "tensor.h"

struct bnfold_result {
	bnf_result r;
	char *input, *output;
	bnfold_fusion *fusions;
	bnfold_skip *skips;
	char *json;
};

static void fusion_view(const bnf_fusion *f, bnfold_fusion *v)
{
	memset(v, 0, sizeof(*v));
	v->is_bn = bnf_fusion_is_bn(f);
	v->pattern = bnf_pattern_name(f->pattern);
	v->graph = f->graph;
	v->layer = f->layer;
	v->layer_op = f->layer_op;
	v->layer_op_after = f->layer_op_after;
	v->node = f->bn;
	v->node_op = f->node_op;
	v->node_output = f->bn_output;
	v->weight = f->weight;
	v->bias = f->bias;
	v->channels = f->channels;
	v->dtype = bnf_dtype_name(f->dtype);
	v->epsilon = f->eps;
	v->bias_created = f->bias_created;
	v->weight_copied = f->weight_copied;
	v->model_order = f->model_order;
	v->shapes = f->shapes;
	v->layer_label = f->layer_label;
	v->node_label = f->bn_label;
	v->check.done = f->verified;
	if (f->verified) {
		v->check.ok = f->verify.ok;
		v->check.max_abs_err = f->verify.max_abs_err;
		v->check.max_rel_err = f->verify.max_rel_err;
		v->check.tolerance = f->verify.tolerance;
		v->check.outputs = f->verify.outputs;
		v->check.terms = f->verify.terms;
		v->check.worst_channel = f->verify.worst_channel;
		v->check.problem = f->verify.problem;
	}
}

static void skip_view(const bnf_skip *s, bnfold_skip *v)
{
	memset(v, 0, sizeof(*v));
	v->graph = s->graph;
	v->bn = s->bn;
	v->bn_output = s->bn_output;
	v->layer = s->layer;
	v->reason = bnf_reason_code(s->reason);
	v->message = s->message;
	v->model_order = s->model_order;
	v->is_bn = s->op == BNF_OP_BN;
	v->node_op = bnf_op_type(s->op);
	v->shapes = s->shapes;
	v->layer_label = s->layer_label;
	v->bn_label = s->bn_label;
}

bnfold_result *bnf_api_result_new(bnf_result *res, const bnf_strlist *order, const char *input, const char *output)
{
	bnfold_result *r = calloc(1, sizeof(*r));

	if (!r || bnf_result_set_order(res, order) < 0)
		goto fail;
	r->input = bnf_strdup(input);
	r->output = output ? bnf_strdup(output) : NULL;
	r->fusions = calloc(res->n_fusions + 1, sizeof(*r->fusions));
	r->skips = calloc(res->n_skips + 1, sizeof(*r->skips));
	if (!r->input || (output && !r->output) || !r->fusions || !r->skips)
		goto fail;
	r->r = *res;
	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < r->r.n_fusions; i++)
		fusion_view(&r->r.fusions[i], &r->fusions[i]);
	for (size_t i = 0; i < r->r.n_skips; i++)
		skip_view(&r->r.skips[i], &r->skips[i]);
	return r;
fail:
	bnfold_result_free(r);
	return NULL;
}

void bnfold_result_free(bnfold_result *r)
{
	if (!r)
		return;
	bnf_result_free(&r->r);
	free(r->input);
	free(r->output);
	free(r->fusions);
	free(r->skips);
	free(r->json);
	free(r);
}

void bnfold_result_counts(const bnfold_result *r, bnfold_counts *c)
{
	memset(c, 0, sizeof(*c));
	if (!r)
		return;
	c->bn_found = r->r.bn_found;
	c->bn_folded = bnf_result_bn_folded(&r->r);
	c->affine_folded = r->r.n_fusions - c->bn_folded;
	c->skipped = bnf_result_bn_skipped(&r->r);
	c->nodes_before = r->r.nodes_before;
	c->nodes_after = r->r.nodes_after;
	c->graph_inputs_removed = r->r.inputs_removed;
	c->verified = bnf_result_verified(&r->r);
	c->verify_failed = bnf_result_verify_failed(&r->r);
}

size_t bnfold_result_n_fusions(const bnfold_result *r)
{
	return r ? r->r.n_fusions : 0;
}

const bnfold_fusion *bnfold_result_fusion(const bnfold_result *r, size_t i)
{
	return r && i < r->r.n_fusions ? &r->fusions[i] : NULL;
}

size_t bnfold_result_n_skips(const bnfold_result *r)
{
	return r ? r->r.n_skips : 0;
}

const bnfold_skip *bnfold_result_skip(const bnfold_result *r, size_t i)
{
	return r && i < r->r.n_skips ? &r->skips[i] : NULL;
}

size_t bnfold_result_n_op_types(const bnfold_result *r)
{
	return r ? r->r.ops.n : 0;
}

int bnfold_result_op_type(const bnfold_result *r, size_t i, const char **domain, const char **op_type,
			  size_t *before, size_t *after)
{
	const bnf_op_count *c;
	if (!r || i >= r->r.ops.n)
		return -1;
	c = &r->r.ops.v[i];
	if (domain)
		*domain = c->domain;
	if (op_type)
		*op_type = c->op_type;
	if (before)
		*before = c->before;
	if (after)
		*after = c->after;
	return 0;
}

void bnfold_result_sizes(const bnfold_result *r, size_t *model_before, size_t *data_before, size_t *model_after,
			 size_t *data_after)
{
	if (model_before)
		*model_before = r ? r->r.bytes_in : 0;
	if (data_before)
		*data_before = r ? r->r.bytes_in_data : 0;
	if (model_after)
		*model_after = r ? r->r.bytes_out : 0;
	if (data_after)
		*data_after = r ? r->r.bytes_out_data : 0;
}

const char *bnfold_result_json(bnfold_result *r)
{
	if (r && !r->json)
		r->json = bnf_report_json(&r->r, r->input, r->output);
	return r ? r->json : NULL;
}

size_t bnfold_reason_count(void)
{
	return BNF_REASON_COUNT - 1; /* every code but "fold" */
}

const char *bnfold_reason_code(size_t i)
{
	return i < BNF_REASON_COUNT - 1 ? bnf_reason_code((bnf_reason)(i + 1)) : NULL;
}

const char *bnfold_reason_text(size_t i)
{
	return i < BNF_REASON_COUNT - 1 ? bnf_reason_text((bnf_reason)(i + 1)) : NULL;
}

/* The quote around a name in a message, none around a label. */
#define Q(name) ((name) && (name)[0] ? "'" : "")

int bnf_api_verify_error(const bnf_result *res, const char *input, bnf_err *e)
{
	const bnf_fusion *worst = NULL;
	double worst_ratio = -1;
	size_t n = bnf_result_verify_failed(res);
	char what[1000];

	for (size_t i = 0; i < res->n_fusions; i++) {
		const bnf_fusion *f = &res->fusions[i];
		double ratio;
		if (!f->verified || f->verify.ok)
			continue;
		ratio = f->verify.problem ? INFINITY : f->verify.max_rel_err / f->verify.tolerance;
		if (isnan(ratio))
			ratio = INFINITY;
		if (!worst || ratio > worst_ratio) {
			worst = f;
			worst_ratio = ratio;
		}
	}
	if (!worst)
		return bnf_fail(e, BNFOLD_E_VERIFY, "%s: a fusion failed verification; nothing written", input);
	/* named nodes in quotes; an unnamed one by its label "(unnamed OP, output NAME)" */
	if (worst->verify.problem)
		snprintf(what, sizeof(what), "%s %s%s%s (output '%s') folded into %s %s%s%s cannot be verified: %s",
			 worst->node_op, Q(worst->bn), worst->bn_label, Q(worst->bn), worst->bn_output, worst->layer_op,
			 Q(worst->layer), worst->layer_label, Q(worst->layer), worst->verify.problem);
	else
		snprintf(what, sizeof(what),
			 "%s %s%s%s (output '%s') folded into %s %s%s%s fails verification: max_rel_err %.3g > tolerance "
			 "%.3g (max_abs_err %.3g, channel %zu)",
			 worst->node_op, Q(worst->bn), worst->bn_label, Q(worst->bn), worst->bn_output, worst->layer_op,
			 Q(worst->layer), worst->layer_label, Q(worst->layer), worst->verify.max_rel_err,
			 worst->verify.tolerance, worst->verify.max_abs_err, worst->verify.worst_channel);
	if (n > 1)
		return bnf_fail(e, BNFOLD_E_VERIFY, "%s: %s; %zu fusions fail; nothing written", input, what, n);
	return bnf_fail(e, BNFOLD_E_VERIFY, "%s: %s; nothing written", input, what);
}

bnfold_status bnf_api_finish(const bnf_err *e, bnfold_result **result, bnfold_error *err)
{
	if (e->code && e->code != BNFOLD_E_VERIFY && result && *result) {
		bnfold_result_free(*result);
		*result = NULL;
	}
	if (err) {
		err->code = (bnfold_status)e->code;
		snprintf(err->message, sizeof(err->message), "%s", e->code ? e->msg : "");
	}
	return (bnfold_status)e->code;
}
