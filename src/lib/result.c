#include "result.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static char *node_name_copy(const Onnx__NodeProto *n)
{
	return bnf_strdup(n->name ? n->name : "");
}

char *bnf_node_label_copy(const Onnx__NodeProto *n)
{
	const char *op = n->op_type && n->op_type[0] ? n->op_type : "node";
	if (n->name && n->name[0])
		return bnf_strdup(n->name);
	if (n->n_output && n->output[0] && n->output[0][0])
		return bnf_asprintf("(unnamed %s, output %s)", op, n->output[0]);
	return bnf_asprintf("(unnamed %s)", op);
}

bool bnf_fusion_is_bn(const bnf_fusion *f)
{
	return bnf_pattern_info(f->pattern)->op == BNF_OP_BN;
}

int bnf_result_add_skip(bnf_result *r, const char *graph, const bnf_plan *p, const Onnx__NodeProto *node,
			const Onnx__NodeProto *layer)
{
	bnf_skip *s;
	if (BNF_GROW(r->skips, r->n_skips, r->cap_skips) < 0)
		return -1;
	s = &r->skips[r->n_skips++];
	memset(s, 0, sizeof(*s));
	s->model_order = SIZE_MAX;
	s->reason = p->reason;
	s->graph = bnf_strdup(graph);
	s->bn = node_name_copy(node);
	s->bn_output = bnf_strdup(node->n_output ? node->output[0] : "");
	s->layer = layer ? node_name_copy(layer) : NULL;
	s->bn_label = bnf_node_label_copy(node);
	s->layer_label = layer ? bnf_node_label_copy(layer) : NULL;
	s->message = bnf_strdup(p->message);
	s->op = p->op;
	s->shapes = bnf_strdup(p->shapes);
	if (!s->graph || !s->bn || !s->bn_output || !s->message || (layer && !s->layer) || !s->shapes || !s->bn_label ||
	    (layer && !s->layer_label))
		return -1;
	return 0;
}

int bnf_result_add_fusion(bnf_result *r, const char *graph, const bnf_plan *p, const Onnx__NodeProto *node,
			  const Onnx__NodeProto *layer, const char *layer_op, const char *layer_label,
			  bool weight_copied, bool bias_created, const bnf_verify *vr)
{
	bnf_fusion *f;
	if (BNF_GROW(r->fusions, r->n_fusions, r->cap_fusions) < 0)
		return -1;
	f = &r->fusions[r->n_fusions++];
	memset(f, 0, sizeof(*f));
	f->model_order = SIZE_MAX;
	f->pattern = p->pattern;
	f->graph = bnf_strdup(graph);
	f->layer = node_name_copy(layer);
	f->layer_op = bnf_strdup(layer_op);
	f->layer_op_after = bnf_strdup(layer->op_type);
	f->bn = node_name_copy(node);
	f->bn_label = bnf_node_label_copy(node);
	f->layer_label = bnf_strdup(layer_label);
	f->node_op = bnf_strdup(node->op_type);
	f->bn_output = bnf_strdup(node->output[0]);
	f->weight = bnf_strdup(layer->input[1]);
	f->bias = bnf_strdup(layer->n_input > 2 ? layer->input[2] : "");
	f->channels = p->channels;
	f->dtype = p->dtype;
	f->eps = p->eps;
	f->weight_copied = weight_copied;
	f->bias_created = bias_created;
	if (!(f->shapes = bnf_strdup(p->shapes)) || !f->bn_label || !f->layer_label)
		return -1;
	if (vr) {
		f->verified = true;
		f->verify = *vr;
	}
	return f->graph && f->layer && f->layer_op && f->layer_op_after && f->bn && f->node_op && f->bn_output &&
			       f->weight && f->bias
		       ? 0
		       : -1;
}

/* A BN's output name and its place in file order. */
typedef struct named_pos {
	const char *name;
	size_t pos;
} named_pos;

static int cmp_named_pos(const void *a, const void *b)
{
	const named_pos *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The first entry of e (n, sorted by name then place) named name, or n. */
static size_t first_named(const named_pos *e, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(e[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(e[lo].name, name) == 0 ? lo : n;
}

/* The first place of name not given yet (taken[g] counts what the group
 * of equal names starting at g has given), or SIZE_MAX. */
static size_t take_order(const named_pos *e, size_t n, size_t *taken, const char *name)
{
	size_t g = first_named(e, n, name), k;
	if (g == n)
		return SIZE_MAX;
	k = g + taken[g];
	if (k >= n || strcmp(e[k].name, name) != 0)
		return SIZE_MAX;
	taken[g]++;
	return e[k].pos;
}

int bnf_result_set_order(bnf_result *r, const bnf_strlist *names)
{
	size_t n = names->n;
	named_pos *e = malloc((n + 1) * sizeof(*e));
	size_t *taken = calloc(n + 1, sizeof(*taken));

	if (!e || !taken) {
		free(e);
		free(taken);
		return -1;
	}
	for (size_t k = 0; k < n; k++)
		e[k] = (named_pos){names->v[k], k};
	qsort(e, n, sizeof(*e), cmp_named_pos);
	for (size_t i = 0; i < r->n_fusions; i++)
		r->fusions[i].model_order = take_order(e, n, taken, r->fusions[i].bn_output);
	for (size_t i = 0; i < r->n_skips; i++)
		r->skips[i].model_order = take_order(e, n, taken, r->skips[i].bn_output);
	free(e);
	free(taken);
	return 0;
}

size_t bnf_result_bn_folded(const bnf_result *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_fusions; i++)
		n += bnf_fusion_is_bn(&r->fusions[i]);
	return n;
}

size_t bnf_result_verified(const bnf_result *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_fusions; i++)
		n += r->fusions[i].verified;
	return n;
}

size_t bnf_result_verify_failed(const bnf_result *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_fusions; i++)
		n += r->fusions[i].verified && !r->fusions[i].verify.ok;
	return n;
}

static void put_check(size_t tag, const bnf_verify *v, void *ctx)
{
	bnf_result *r = ctx;
	if (tag < r->n_fusions) {
		r->fusions[tag].verified = true;
		r->fusions[tag].verify = *v;
	}
}

void bnf_result_verify_start(bnf_result *r)
{
	bnf_verify_batch_start(r->pending);
}

int bnf_result_verify_finish(bnf_result *r, bnf_err *e)
{
	int rc = bnf_verify_batch_finish(r->pending, put_check, r, e);
	r->pending = NULL;
	return rc;
}

void bnf_result_free(bnf_result *r)
{
	bnf_verify_batch_free(r->pending); /* its thread reads the input: done before it closes */
	for (size_t i = 0; i < r->n_fusions; i++) {
		bnf_fusion *f = &r->fusions[i];
		free(f->graph); free(f->layer); free(f->layer_op); free(f->layer_op_after);
		free(f->node_op); free(f->bn);
		free(f->bn_output); free(f->weight); free(f->bias); free(f->shapes);
		free(f->bn_label); free(f->layer_label);
	}
	for (size_t i = 0; i < r->n_skips; i++) {
		bnf_skip *s = &r->skips[i];
		free(s->graph); free(s->bn); free(s->bn_output); free(s->layer); free(s->message); free(s->shapes);
		free(s->bn_label); free(s->layer_label);
	}
	free(r->fusions);
	free(r->skips);
	free(r->producer_name);
	free(r->producer_version);
	bnf_op_counts_free(&r->ops);
	memset(r, 0, sizeof(*r));
}

size_t bnf_result_bn_skipped(const bnf_result *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_skips; i++)
		n += r->skips[i].op == BNF_OP_BN;
	return n;
}
