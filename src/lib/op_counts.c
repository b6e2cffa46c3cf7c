#include "op_counts.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "visit.h"

/* The nodes of a model, gathered to be sorted: a model may hold many op
 * types (custom domains), so no search per node. */
typedef struct node_list {
	const Onnx__NodeProto **v;
	size_t n, cap;
	bool failed;
} node_list;

static const char *domain_of(const Onnx__NodeProto *n)
{
	return !n->domain || strcmp(n->domain, "ai.onnx") == 0 ? "" : n->domain;
}

static const char *op_of(const Onnx__NodeProto *n)
{
	return n->op_type ? n->op_type : "";
}

static int key_cmp(const char *op_a, const char *dom_a, const char *op_b, const char *dom_b)
{
	int c = strcmp(op_a, op_b);
	return c ? c : strcmp(dom_a, dom_b);
}

static int node_cmp(const void *a, const void *b)
{
	const Onnx__NodeProto *x = *(const Onnx__NodeProto *const *)a, *y = *(const Onnx__NodeProto *const *)b;
	return key_cmp(op_of(x), domain_of(x), op_of(y), domain_of(y));
}

static int gather_node(Onnx__GraphProto *g, Onnx__NodeProto *node, size_t index, int depth, void *ctx)
{
	node_list *l = ctx;
	(void)g, (void)index, (void)depth;
	if (BNF_GROW(l->v, l->n, l->cap) < 0) {
		l->failed = true;
		return -1;
	}
	l->v[l->n++] = node;
	return 0;
}

/* Every node of the model: graph, subgraphs and function bodies. */
static int gather_model(const Onnx__ModelProto *m, node_list *l)
{
	bnf_visitor v = {.node = gather_node, .ctx = l};
	if (m->graph && bnf_visit_graph(m->graph, &v) < 0)
		return -1;
	for (size_t i = 0; i < m->n_functions; i++) {
		Onnx__GraphProto body;
		onnx__graph_proto__init(&body);
		body.n_node = m->functions[i]->n_node;
		body.node = m->functions[i]->node;
		if (bnf_visit_graph(&body, &v) < 0)
			return -1;
	}
	return 0;
}

/* One new row for op type (op, dom) at out[*n]. */
static int new_row(bnf_op_count *out, size_t *n, const char *op, const char *dom)
{
	bnf_op_count *r = &out[(*n)++];
	memset(r, 0, sizeof(*r));
	r->op_type = bnf_strdup(op);
	r->domain = bnf_strdup(dom);
	return r->op_type && r->domain ? 0 : -1;
}

/* Merge the sorted nodes into the sorted rows of c, into a new array. */
static int merge(bnf_op_counts *c, const node_list *l, bool after)
{
	bnf_op_count *out = calloc(c->n + l->n + 1, sizeof(*out));
	size_t i = 0, j = 0, n = 0;

	if (!out)
		return -1;
	while (i < c->n || j < l->n) {
		const Onnx__NodeProto *node = j < l->n ? l->v[j] : NULL;
		int cmp = !node ? -1 : i == c->n ? 1 : key_cmp(c->v[i].op_type, c->v[i].domain, op_of(node), domain_of(node));
		if (cmp < 0) {
			out[n++] = c->v[i++];
			continue;
		}
		if (cmp == 0)
			out[n++] = c->v[i++];
		else if (new_row(out, &n, op_of(node), domain_of(node)) < 0)
			goto fail;
		for (; j < l->n && node_cmp(&l->v[j], &node) == 0; j++)
			*(after ? &out[n - 1].after : &out[n - 1].before) += 1;
	}
	free(c->v);
	c->v = out;
	c->n = c->cap = n;
	return 0;
fail:
	/* rows taken from c stay c's; only the new ones go */
	for (size_t k = 0; k < n; k++) {
		bool own = true;
		for (size_t q = 0; q < c->n && own; q++)
			own = out[k].op_type != c->v[q].op_type;
		if (own) {
			free(out[k].op_type);
			free(out[k].domain);
		}
	}
	free(out);
	return -1;
}

int bnf_op_counts_add(bnf_op_counts *c, const Onnx__ModelProto *m, bool after, size_t *total)
{
	node_list l = {0};
	int rc = -1;

	if (gather_model(m, &l) < 0 && l.failed)
		goto out;
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), node_cmp);
	if (merge(c, &l, after) < 0)
		goto out;
	*total = l.n;
	rc = 0;
out:
	free(l.v);
	return rc;
}

void bnf_op_counts_free(bnf_op_counts *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].op_type);
		free(c->v[i].domain);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}
