#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "visit.h"

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static bnf_value *lookup(const bnf_graph *gi, const char *name)
{
	size_t mask = gi->cap - 1;
	size_t i = (size_t)hash_name(name) & mask;
	for (;;) {
		bnf_value *v = &gi->slots[i];
		if (!v->name || strcmp(v->name, name) == 0)
			return v;
		i = (i + 1) & mask;
	}
}

static int grow(bnf_graph *gi)
{
	size_t old_cap = gi->cap;
	bnf_value *old = gi->slots;
	size_t cap = old_cap ? old_cap * 2 : 64;
	gi->slots = calloc(cap, sizeof(*gi->slots));
	if (!gi->slots) {
		gi->slots = old;
		return -1;
	}
	gi->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].name)
			*lookup(gi, old[i].name) = old[i];
	free(old);
	return 0;
}

bnf_value *bnf_graph_value(const bnf_graph *gi, const char *name)
{
	bnf_value *v;
	if (!name || !gi->cap)
		return NULL;
	v = lookup(gi, name);
	return v->name ? v : NULL;
}

bnf_value *bnf_graph_value_add(bnf_graph *gi, const char *name)
{
	bnf_value *v;
	if ((gi->used + 1) * 2 > gi->cap && grow(gi) < 0)
		return NULL;
	v = lookup(gi, name);
	if (!v->name) {
		if (!(v->name = bnf_strdup(name)))
			return NULL;
		v->producer = -1;
		v->producer_slot = -1;
		v->init = -1;
		v->shape = -1;
		gi->used++;
	}
	return v;
}

/* Count one read of every non-empty input of node. */
static int count_inputs(bnf_graph *gi, const Onnx__NodeProto *node)
{
	for (size_t i = 0; i < node->n_input; i++) {
		bnf_value *v;
		if (!node->input[i][0])
			continue;
		if (!(v = bnf_graph_value_add(gi, node->input[i])))
			return -1;
		v->n_consumers++;
	}
	return 0;
}

static int count_node_reads(Onnx__GraphProto *g, Onnx__NodeProto *node, size_t index, int depth, void *ctx)
{
	(void)g, (void)index, (void)depth;
	return count_inputs(ctx, node);
}

/* A subgraph output may name an outer value directly. */
static int count_output_reads(Onnx__GraphProto *g, int depth, void *ctx)
{
	(void)depth;
	for (size_t o = 0; o < g->n_output; o++) {
		bnf_value *v;
		if (!g->output[o]->name || !g->output[o]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(ctx, g->output[o]->name)))
			return -1;
		v->n_consumers++;
	}
	return 0;
}

/* Count one read of every name that a subgraph (at any depth) reads. */
static int count_subgraph_reads(bnf_graph *gi, Onnx__GraphProto *sg)
{
	const bnf_visitor v = {.node = count_node_reads, .graph_end = count_output_reads, .ctx = gi};
	return bnf_visit_graph(sg, &v);
}

static int out_of_memory(const bnf_graph *gi)
{
	return bnf_fail(gi->fail, BNFOLD_E_NOMEM, "%s: out of memory while indexing the graph", gi->path);
}

/* The entry of name when a node of this graph produces it, else NULL. */
static const bnf_value *produced_here(const bnf_graph *gi, const char *name)
{
	const bnf_value *v = name[0] ? bnf_graph_value(gi, name) : NULL;
	return v && v->producer >= 0 ? v : NULL;
}

/* Count the edges "producer -> node reading its output" within this graph:
 * start[p + 1] for each producer p, pending[r] for each reader r.  True
 * when every producer is listed before its readers. */
static bool count_edges(const bnf_graph *gi, size_t *start, size_t *pending, size_t *n_edges)
{
	const Onnx__GraphProto *g = gi->g;
	bool sorted = true;

	for (size_t r = 0; r < g->n_node; r++) {
		const Onnx__NodeProto *node = g->node[r];
		for (size_t i = 0; i < node->n_input; i++) {
			const bnf_value *v = produced_here(gi, node->input[i]);
			if (v) {
				start[v->producer + 1]++;
				pending[r]++;
				(*n_edges)++;
				sorted = sorted && (size_t)v->producer < r;
			}
		}
	}
	return sorted;
}

/* Kahn's algorithm over the edges count_edges counted: queue receives the
 * nodes, every producer before its readers.  Returns how many it ordered;
 * fewer than all when some lie on or after a cycle (pending > 0). */
static size_t kahn(const bnf_graph *gi, size_t *start, size_t *fill, size_t *pending, size_t *edges,
		   size_t *queue)
{
	const Onnx__GraphProto *g = gi->g;
	size_t n = g->n_node, head = 0, tail = 0;

	for (size_t p = 0; p < n; p++)
		fill[p + 1] = start[p + 1] += start[p];
	for (size_t r = 0; r < n; r++) {
		const Onnx__NodeProto *node = g->node[r];
		for (size_t i = 0; i < node->n_input; i++) {
			const bnf_value *v = produced_here(gi, node->input[i]);
			if (v)
				edges[fill[v->producer]++] = r;
		}
	}
	for (size_t r = 0; r < n; r++)
		if (pending[r] == 0)
			queue[tail++] = r;
	while (head < tail) {
		size_t p = queue[head++];
		for (size_t e = start[p]; e < start[p + 1]; e++)
			if (--pending[edges[e]] == 0)
				queue[tail++] = edges[e];
	}
	return tail;
}

/* Report the cycle among the nodes kahn left pending.  Every one of them
 * has a predecessor left: walking back n steps from one ends on the cycle
 * itself.  Returns -1. */
static int report_cycle(const bnf_graph *gi, const size_t *pending)
{
	const Onnx__GraphProto *g = gi->g;
	size_t n = g->n_node, cur = 0;
	const char *via = "";
	char lb[64];

	while (pending[cur] == 0)
		cur++;
	for (size_t step = 0; step < n; step++) {
		const Onnx__NodeProto *node = g->node[cur];
		for (size_t i = 0; i < node->n_input; i++) {
			const bnf_value *v = produced_here(gi, node->input[i]);
			if (v && pending[v->producer] > 0) {
				cur = (size_t)v->producer;
				via = node->input[i];
				break;
			}
		}
	}
	return bnf_fail(gi->fail, BNFOLD_E_NOT_ONNX, "%s: graph '%s' has a cycle through node '%s' (output '%s')",
			gi->path, g->name && g->name[0] ? g->name : "(unnamed)",
			bnf_node_label(g->node[cur], (int)cur, lb, sizeof(lb)), via);
}

/* Fill gi->order: the listed order when the graph is sorted, else a
 * topological one from Kahn's algorithm over the edges "producer -> node
 * reading its output" within this graph; the nodes it cannot order lie on
 * or after a cycle, an error.  (Outer-scope reads from inside a subgraph
 * are not edges here.)  The order the nodes are listed in does not
 * matter: unsorted graphs fold. */
static int order_nodes(bnf_graph *gi)
{
	size_t n = gi->g->n_node, n_edges = 0;
	size_t *start = calloc(n + 1, sizeof(*start)), *fill = calloc(n + 1, sizeof(*fill));
	size_t *pending = calloc(n + 1, sizeof(*pending)), *queue = calloc(n + 1, sizeof(*queue));
	size_t *edges = NULL;
	int rc = -1;

	if (!start || !fill || !pending || !queue) {
		out_of_memory(gi);
		goto out;
	}
	if (count_edges(gi, start, pending, &n_edges)) {
		for (size_t r = 0; r < n; r++)
			queue[r] = r;
	} else {
		if (!(edges = malloc((n_edges ? n_edges : 1) * sizeof(*edges)))) {
			out_of_memory(gi);
			goto out;
		}
		if (kahn(gi, start, fill, pending, edges, queue) < n) {
			report_cycle(gi, pending);
			goto out;
		}
	}
	gi->order = queue;
	queue = NULL;
	rc = 0;
out:
	free(start);
	free(fill);
	free(pending);
	free(queue);
	free(edges);
	return rc;
}

/* Index g's initializers, inputs and outputs.  -1 on an initializer
 * defined twice or when memory runs out (reported). */
static int index_graph_values(bnf_graph *gi)
{
	const Onnx__GraphProto *g = gi->g;

	for (size_t i = 0; i < g->n_initializer; i++) {
		bnf_value *v;
		const char *name = g->initializer[i]->name;
		if (!name || !name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, name)))
			return out_of_memory(gi);
		if (v->init >= 0)
			return bnf_fail(gi->fail, BNFOLD_E_NOT_ONNX, "%s: initializer '%s' is defined twice", gi->path,
					name);
		v->init = (int)i;
	}
	for (size_t i = 0; i < g->n_input; i++) {
		bnf_value *v;
		if (!g->input[i]->name || !g->input[i]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, g->input[i]->name)))
			return out_of_memory(gi);
		v->is_input = true;
	}
	for (size_t i = 0; i < g->n_output; i++) {
		bnf_value *v;
		if (!g->output[i]->name || !g->output[i]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, g->output[i]->name)))
			return out_of_memory(gi);
		v->is_output = true;
	}
	return 0;
}

/* Index node n of gi's graph: what it produces, what it and the graphs it
 * holds read.  -1 on a name produced twice or when memory runs out
 * (reported). */
static int index_node(bnf_graph *gi, size_t n)
{
	const Onnx__NodeProto *node = gi->g->node[n];
	Onnx__GraphProto *sg;
	char lb[64];

	for (size_t o = 0; o < node->n_output; o++) {
		bnf_value *v;
		if (!node->output[o][0])
			continue;
		if (!(v = bnf_graph_value_add(gi, node->output[o])))
			return out_of_memory(gi);
		if (v->producer >= 0 || v->init >= 0)
			return bnf_fail(gi->fail, BNFOLD_E_NOT_ONNX, "%s: tensor '%s' is produced twice (node '%s'%s)",
					gi->path, node->output[o], bnf_node_label(node, (int)n, lb, sizeof(lb)),
					v->init >= 0 ? " and an initializer" : " and another node");
		v->producer = (int)n;
		v->producer_slot = (int)o;
	}
	if (count_inputs(gi, node) < 0)
		return out_of_memory(gi);
	for (size_t k = 0; (sg = bnf_node_subgraph(node, k, NULL)) != NULL; k++)
		if (count_subgraph_reads(gi, sg) < 0)
			return out_of_memory(gi);
	return 0;
}

int bnf_graph_build(bnf_graph *gi, Onnx__GraphProto *g, const bnf_graph *parent,
		    const char *path, int ir_version, int opset, bool fold_overridable, bnf_err *fail)
{
	memset(gi, 0, sizeof(*gi));
	gi->g = g;
	gi->parent = parent;
	gi->path = path;
	gi->fail = fail;
	gi->ir_version = ir_version;
	gi->opset = opset;
	gi->fold_overridable = fold_overridable;
	if (grow(gi) < 0) {
		out_of_memory(gi);
		goto fail;
	}
	if (index_graph_values(gi) < 0)
		goto fail;
	for (size_t n = 0; n < g->n_node; n++)
		if (index_node(gi, n) < 0)
			goto fail;
	if (order_nodes(gi) < 0)
		goto fail;
	return 0;
fail:
	bnf_graph_free(gi);
	return -1;
}

int bnf_graph_add_training(bnf_graph *gi, Onnx__TrainingInfoProto *const *ti, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const Onnx__TrainingInfoProto *t = ti[i];
		Onnx__StringStringEntryProto *const *bind[2] = {t->initialization_binding, t->update_binding};
		size_t n_bind[2] = {t->n_initialization_binding, t->n_update_binding};

		if ((t->initialization && count_subgraph_reads(gi, t->initialization) < 0) ||
		    (t->algorithm && count_subgraph_reads(gi, t->algorithm) < 0))
			return -1;
		for (int k = 0; k < 2; k++)
			for (size_t b = 0; b < n_bind[k]; b++) {
				bnf_value *v;
				if (!bind[k][b]->key || !bind[k][b]->key[0])
					continue;
				if (!(v = bnf_graph_value_add(gi, bind[k][b]->key)))
					return -1;
				v->trained = true;
				v->n_consumers++;
			}
	}
	return 0;
}

static int add_name(bnf_graph *names, const char *name)
{
	return !name || !name[0] || bnf_graph_value_add(names, name) ? 0 : -1;
}

static int add_value_infos(bnf_graph *names, Onnx__ValueInfoProto *const *vi, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (add_name(names, vi[i]->name) < 0)
			return -1;
	return 0;
}

/* The names a graph declares: initializers, sparse initializers, inputs,
 * outputs, value_info. */
static int add_graph_names(Onnx__GraphProto *g, Onnx__NodeProto *owner, Onnx__AttributeProto *attr, int depth,
			   void *ctx)
{
	bnf_graph *names = ctx;

	(void)owner, (void)attr, (void)depth;
	for (size_t i = 0; i < g->n_initializer; i++)
		if (add_name(names, g->initializer[i]->name) < 0)
			return -1;
	for (size_t i = 0; i < g->n_sparse_initializer; i++) {
		const Onnx__SparseTensorProto *sp = g->sparse_initializer[i];
		if (sp->values && add_name(names, sp->values->name) < 0)
			return -1;
	}
	if (add_value_infos(names, g->input, g->n_input) < 0 || add_value_infos(names, g->output, g->n_output) < 0 ||
	    add_value_infos(names, g->value_info, g->n_value_info) < 0)
		return -1;
	return 0;
}

static int add_node_names(Onnx__GraphProto *g, Onnx__NodeProto *node, size_t index, int depth, void *ctx)
{
	(void)g, (void)index, (void)depth;
	for (size_t i = 0; i < node->n_input; i++)
		if (add_name(ctx, node->input[i]) < 0)
			return -1;
	for (size_t o = 0; o < node->n_output; o++)
		if (add_name(ctx, node->output[o]) < 0)
			return -1;
	return 0;
}

int bnf_graph_collect_names(bnf_graph *names, const Onnx__GraphProto *g)
{
	const bnf_visitor v = {.graph = add_graph_names, .node = add_node_names, .ctx = names};
	/* The walk only reads: the callbacks take g as it is given to any visitor. */
	return bnf_visit_graph((Onnx__GraphProto *)g, &v);
}

void bnf_graph_free(bnf_graph *gi)
{
	for (size_t i = 0; i < gi->cap; i++)
		free((char *)gi->slots[i].name);
	free(gi->slots);
	gi->slots = NULL;
	free(gi->order);
	gi->order = NULL;
	gi->cap = gi->used = 0;
	free(gi->shapes);
	gi->shapes = NULL;
	gi->n_shapes = gi->shapes_cap = 0;
}

/* The shape an initializer's dims give, or unknown. */
static bnf_shape initializer_shape(const Onnx__TensorProto *t)
{
	bnf_shape s = bnf_shape_unknown();
	if (t->n_dims > BNF_SHAPE_MAX_RANK)
		return s;
	for (size_t d = 0; d < t->n_dims; d++) {
		if (t->dims[d] < 0)
			return s;
		s.dims[d].value = t->dims[d];
		s.dims[d].param = NULL;
	}
	s.rank = (int)t->n_dims;
	s.elem_type = t->has_data_type ? t->data_type : 0;
	return s;
}

bool bnf_graph_shape(const bnf_graph *gi, const char *name, bnf_shape *out)
{
	*out = bnf_shape_unknown();
	for (const bnf_graph *cur = gi; cur && name && name[0]; cur = cur->parent) {
		const bnf_value *v = bnf_graph_value(cur, name);
		if (!v || (v->init < 0 && v->producer < 0 && !v->is_input && v->shape < 0))
			continue; /* an outer-scope name: defined further out */
		if (v->shape >= 0)
			*out = cur->shapes[v->shape];
		else if (v->init >= 0)
			*out = initializer_shape(cur->g->initializer[v->init]);
		return out->rank >= 0;
	}
	return false;
}

int bnf_graph_set_shape(bnf_graph *gi, const char *name, const bnf_shape *s)
{
	bnf_value *v = bnf_graph_value(gi, name);
	if (!v && !(v = bnf_graph_value_add(gi, name)))
		return -1;
	if (v->shape < 0) {
		if (BNF_GROW(gi->shapes, gi->n_shapes + 1, gi->shapes_cap) < 0)
			return -1;
		v->shape = (int)gi->n_shapes++;
	}
	gi->shapes[v->shape] = *s;
	return 0;
}

bool bnf_graph_inputs_are_defaults(const bnf_graph *gi)
{
	return gi->ir_version < 4 || gi->fold_overridable;
}

Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *node, const char *name)
{
	for (size_t a = 0; a < node->n_attribute; a++)
		if (node->attribute[a]->name && strcmp(node->attribute[a]->name, name) == 0)
			return node->attribute[a];
	return NULL;
}

int64_t bnf_node_attr_int(const Onnx__NodeProto *node, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, name);
	return a && a->has_i ? a->i : def;
}

float bnf_node_attr_float(const Onnx__NodeProto *node, const char *name, float def)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, name);
	return a && a->has_f ? a->f : def;
}

bool bnf_node_is_onnx(const Onnx__NodeProto *node, const char *op_type)
{
	bool onnx_domain = !node->domain || !node->domain[0] || strcmp(node->domain, "ai.onnx") == 0;
	return onnx_domain && node->op_type && strcmp(node->op_type, op_type) == 0;
}

const char *bnf_node_label(const Onnx__NodeProto *node, int index, char *buf, size_t len)
{
	if (node->name && node->name[0])
		return node->name;
	snprintf(buf, len, "%s #%d", node->op_type ? node->op_type : "node", index);
	return buf;
}
