#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "payload.h"

#define MAX_CHAIN 64 /* Identity hops followed before giving up (cycles) */

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
		gi->used++;
	}
	return v;
}

/* Count one read of every name that a subgraph (at any depth) reads. */
static int count_subgraph_reads(bnf_graph *gi, const Onnx__GraphProto *sg)
{
	for (size_t n = 0; n < sg->n_node; n++) {
		const Onnx__NodeProto *node = sg->node[n];
		for (size_t i = 0; i < node->n_input; i++) {
			bnf_value *v;
			if (!node->input[i][0])
				continue;
			if (!(v = bnf_graph_value_add(gi, node->input[i])))
				return -1;
			v->n_consumers++;
		}
		for (size_t a = 0; a < node->n_attribute; a++) {
			const Onnx__AttributeProto *at = node->attribute[a];
			if (at->g && count_subgraph_reads(gi, at->g) < 0)
				return -1;
			for (size_t k = 0; k < at->n_graphs; k++)
				if (count_subgraph_reads(gi, at->graphs[k]) < 0)
					return -1;
		}
	}
	/* A subgraph output may name an outer value directly. */
	for (size_t o = 0; o < sg->n_output; o++) {
		bnf_value *v;
		if (!sg->output[o]->name || !sg->output[o]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, sg->output[o]->name)))
			return -1;
		v->n_consumers++;
	}
	return 0;
}

/* Fill gi->order with Kahn's algorithm over the edges "producer -> node
 * reading its output" within this graph; the nodes it cannot order lie on
 * or after a cycle, an error.  (Outer-scope reads from inside a subgraph
 * are not edges here.)  The order the nodes are listed in does not
 * matter: unsorted graphs fold. */
static int order_nodes(bnf_graph *gi)
{
	const Onnx__GraphProto *g = gi->g;
	size_t n = g->n_node, n_edges = 0, head = 0, tail = 0;
	size_t *start = calloc(n + 1, sizeof(*start)), *fill = calloc(n + 1, sizeof(*fill));
	size_t *pending = calloc(n + 1, sizeof(*pending)), *queue = calloc(n + 1, sizeof(*queue));
	size_t *edges = NULL;
	bool sorted = true;
	char lb[64];
	int rc = -1;

	if (!start || !fill || !pending || !queue)
		goto oom;
	for (size_t r = 0; r < n; r++) {
		const Onnx__NodeProto *node = g->node[r];
		for (size_t i = 0; i < node->n_input; i++) {
			const bnf_value *v = node->input[i][0] ? bnf_graph_value(gi, node->input[i]) : NULL;
			if (v && v->producer >= 0) {
				start[v->producer + 1]++;
				pending[r]++;
				n_edges++;
				sorted = sorted && (size_t)v->producer < r;
			}
		}
	}
	if (sorted) {
		for (size_t r = 0; r < n; r++)
			queue[r] = r;
		gi->order = queue;
		queue = NULL;
		rc = 0;
		goto done;
	}
	if (!(edges = malloc((n_edges ? n_edges : 1) * sizeof(*edges))))
		goto oom;
	for (size_t p = 0; p < n; p++)
		fill[p + 1] = start[p + 1] += start[p];
	for (size_t r = 0; r < n; r++) {
		const Onnx__NodeProto *node = g->node[r];
		for (size_t i = 0; i < node->n_input; i++) {
			const bnf_value *v = node->input[i][0] ? bnf_graph_value(gi, node->input[i]) : NULL;
			if (v && v->producer >= 0)
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
	rc = 0;
	if (tail == n) {
		gi->order = queue;
		queue = NULL;
	} else {
		/* Every node left has a predecessor left: walking back n steps
		 * from one of them ends on the cycle itself. */
		size_t cur = 0;
		const char *via = "";
		while (pending[cur] == 0)
			cur++;
		for (size_t step = 0; step < n; step++) {
			const Onnx__NodeProto *node = g->node[cur];
			for (size_t i = 0; i < node->n_input; i++) {
				const bnf_value *v = node->input[i][0] ? bnf_graph_value(gi, node->input[i]) : NULL;
				if (v && v->producer >= 0 && pending[v->producer] > 0) {
					cur = (size_t)v->producer;
					via = node->input[i];
					break;
				}
			}
		}
		rc = bnf_error("%s: graph '%s' has a cycle through node '%s' (output '%s')", gi->path,
			       g->name && g->name[0] ? g->name : "(unnamed)",
			       bnf_node_label(g->node[cur], (int)cur, lb, sizeof(lb)), via);
	}
	goto done;
oom:
	bnf_error("%s: out of memory while indexing the graph", gi->path);
done:
	free(start);
	free(fill);
	free(pending);
	free(queue);
	free(edges);
	return rc;
}

int bnf_graph_build(bnf_graph *gi, Onnx__GraphProto *g, const bnf_graph *parent,
		    const char *path, int ir_version, int opset, bool fold_overridable)
{
	char lb[64];

	memset(gi, 0, sizeof(*gi));
	gi->g = g;
	gi->parent = parent;
	gi->path = path;
	gi->ir_version = ir_version;
	gi->opset = opset;
	gi->fold_overridable = fold_overridable;
	if (grow(gi) < 0)
		goto oom;

	for (size_t i = 0; i < g->n_initializer; i++) {
		bnf_value *v;
		const char *name = g->initializer[i]->name;
		if (!name || !name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, name)))
			goto oom;
		if (v->init >= 0) {
			bnf_error("%s: initializer '%s' is defined twice", path, name);
			goto fail;
		}
		v->init = (int)i;
	}
	for (size_t i = 0; i < g->n_input; i++) {
		bnf_value *v;
		if (!g->input[i]->name || !g->input[i]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, g->input[i]->name)))
			goto oom;
		v->is_input = true;
	}
	for (size_t i = 0; i < g->n_output; i++) {
		bnf_value *v;
		if (!g->output[i]->name || !g->output[i]->name[0])
			continue;
		if (!(v = bnf_graph_value_add(gi, g->output[i]->name)))
			goto oom;
		v->is_output = true;
	}
	for (size_t n = 0; n < g->n_node; n++) {
		const Onnx__NodeProto *node = g->node[n];
		for (size_t o = 0; o < node->n_output; o++) {
			bnf_value *v;
			if (!node->output[o][0])
				continue;
			if (!(v = bnf_graph_value_add(gi, node->output[o])))
				goto oom;
			if (v->producer >= 0 || v->init >= 0) {
				bnf_error("%s: tensor '%s' is produced twice (node '%s'%s)", path,
					  node->output[o], bnf_node_label(node, (int)n, lb, sizeof(lb)),
					  v->init >= 0 ? " and an initializer" : " and another node");
				goto fail;
			}
			v->producer = (int)n;
			v->producer_slot = (int)o;
		}
		for (size_t i = 0; i < node->n_input; i++) {
			bnf_value *v;
			if (!node->input[i][0])
				continue;
			if (!(v = bnf_graph_value_add(gi, node->input[i])))
				goto oom;
			v->n_consumers++;
		}
		for (size_t a = 0; a < node->n_attribute; a++) {
			const Onnx__AttributeProto *at = node->attribute[a];
			if (at->g && count_subgraph_reads(gi, at->g) < 0)
				goto oom;
			for (size_t k = 0; k < at->n_graphs; k++)
				if (count_subgraph_reads(gi, at->graphs[k]) < 0)
					goto oom;
		}
	}
	if (order_nodes(gi) < 0)
		goto fail;
	return 0;
oom:
	bnf_error("%s: out of memory while indexing the graph", path);
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

int bnf_graph_collect_names(bnf_graph *names, const Onnx__GraphProto *g)
{
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
	for (size_t n = 0; n < g->n_node; n++) {
		const Onnx__NodeProto *node = g->node[n];
		for (size_t i = 0; i < node->n_input; i++)
			if (add_name(names, node->input[i]) < 0)
				return -1;
		for (size_t o = 0; o < node->n_output; o++)
			if (add_name(names, node->output[o]) < 0)
				return -1;
		for (size_t a = 0; a < node->n_attribute; a++) {
			const Onnx__AttributeProto *at = node->attribute[a];
			if (at->g && bnf_graph_collect_names(names, at->g) < 0)
				return -1;
			for (size_t k = 0; k < at->n_graphs; k++)
				if (bnf_graph_collect_names(names, at->graphs[k]) < 0)
					return -1;
		}
	}
	return 0;
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

static bnf_const_status resolve_const(const bnf_graph *gi, const char *name, bnf_const *c,
				      bool in_shape);

/* Resolve a ConstantOfShape node: a shape from a constant int tensor and a
 * one-element value (float32 0 by default). */
static bnf_const_status const_of_shape(const bnf_graph *gi, const Onnx__NodeProto *node,
				       bnf_const *c)
{
	bnf_const shape;
	const Onnx__AttributeProto *val = bnf_node_attr(node, "value");
	int64_t dims[BNF_MAX_RANK];
	size_t numel = 1;
	bnf_const_status st;

	if (node->n_input < 1)
		return BNF_CONST_NOT_CONSTANT;
	/* in_shape: a shape made by another ConstantOfShape is never an int
	 * tensor bnfold reads, and following it could loop (a node that reads
	 * its own output). */
	st = resolve_const(gi, node->input[0], &shape, true);
	if (st != BNF_CONST_OK) {
		snprintf(c->msg, sizeof(c->msg), "shape of ConstantOfShape: %.200s", shape.msg);
		return st;
	}
	if (shape.view.rank != 1 || shape.view.numel > BNF_MAX_RANK ||
	    bnf_tview_read_i64(&shape.view, dims) < 0) {
		snprintf(c->msg, sizeof(c->msg), "ConstantOfShape shape is not a short 1-D integer tensor");
		return BNF_CONST_UNSUPPORTED;
	}
	memset(&c->view, 0, sizeof(c->view));
	c->view.rank = shape.view.numel;
	for (size_t i = 0; i < c->view.rank; i++) {
		if (dims[i] < 0 || !bnf_mul_size(numel, (size_t)dims[i], &numel)) {
			snprintf(c->msg, sizeof(c->msg), "ConstantOfShape shape is negative or overflows");
			return BNF_CONST_MALFORMED;
		}
		c->view.dims[i] = dims[i];
	}
	c->view.numel = numel;
	c->view.uniform = true;
	c->view.dtype = BNF_DT_FLOAT;
	c->view.fill = 0.0;
	if (val && val->t) {
		bnf_tview vv;
		double x;
		if (bnf_tview_from_tensor(val->t, &vv, c->msg, sizeof(c->msg)) != BNF_TENSOR_OK ||
		    vv.numel != 1 || !bnf_dtype_is_float(vv.dtype)) {
			snprintf(c->msg, sizeof(c->msg), "ConstantOfShape value is not one float");
			return BNF_CONST_UNSUPPORTED;
		}
		bnf_tview_read(&vv, &x);
		c->view.dtype = vv.dtype;
		c->view.fill = x;
	}
	return BNF_CONST_OK;
}

/* Resolve Reshape(constant, constant shape): the data as it is, with new
 * dims (0 copies the input dim unless allowzero, -1 is inferred). Never
 * edited in place: the fold writes a new tensor. */
static bnf_const_status reshape(const bnf_graph *gi, const Onnx__NodeProto *node, bnf_const *c)
{
	bnf_const shape;
	int64_t dims[BNF_MAX_RANK];
	bool allowzero = bnf_node_attr_int(node, "allowzero", 0) != 0;
	size_t known = 1;
	int infer = -1;
	bnf_const_status st;

	st = bnf_graph_const(gi, node->input[1], &shape);
	if (st != BNF_CONST_OK) {
		snprintf(c->msg, sizeof(c->msg), "shape of Reshape: %.200s", shape.msg);
		return st;
	}
	if (shape.view.rank != 1 || shape.view.numel > BNF_MAX_RANK || bnf_tview_read_i64(&shape.view, dims) < 0) {
		snprintf(c->msg, sizeof(c->msg), "Reshape shape is not a short 1-D integer tensor");
		return BNF_CONST_UNSUPPORTED;
	}
	st = bnf_graph_const(gi, node->input[0], c);
	if (st != BNF_CONST_OK)
		return st;
	for (size_t i = 0; i < shape.view.numel; i++) {
		if (dims[i] == 0 && !allowzero) {
			if (i >= c->view.rank)
				goto bad;
			dims[i] = c->view.dims[i];
		}
		if (dims[i] == -1) {
			if (infer >= 0)
				goto bad;
			infer = (int)i;
			continue;
		}
		if (dims[i] < 0 || !bnf_mul_size(known, (size_t)dims[i], &known))
			goto bad;
	}
	if (infer >= 0) {
		if (known == 0 || c->view.numel % known != 0)
			goto bad;
		dims[infer] = (int64_t)(c->view.numel / known);
		known = c->view.numel;
	}
	if (known != c->view.numel)
		goto bad;
	c->view.rank = shape.view.numel;
	memcpy(c->view.dims, dims, c->view.rank * sizeof(dims[0]));
	c->exclusive = false;
	return BNF_CONST_OK;
bad:
	snprintf(c->msg, sizeof(c->msg), "Reshape of %zu elements to the given shape is invalid", c->view.numel);
	return BNF_CONST_MALFORMED;
}

static bnf_const_status from_tensor_status(bnf_tensor_status ts)
{
	switch (ts) {
	case BNF_TENSOR_OK: return BNF_CONST_OK;
	case BNF_TENSOR_MALFORMED: return BNF_CONST_MALFORMED;
	case BNF_TENSOR_BAD_DTYPE: return BNF_CONST_BAD_DTYPE;
	default: return BNF_CONST_UNSUPPORTED;
	}
}

/* Resolve a Constant node's value into c. */
static bnf_const_status constant_node(const Onnx__NodeProto *node, const bnf_payloads *pl, bnf_const *c)
{
	Onnx__AttributeProto *a;
	bnf_tensor_status ts;

	if ((a = bnf_node_attr(node, "value")) && a->t) {
		ts = bnf_tview_from_tensor(a->t, &c->view, c->msg, sizeof(c->msg));
		bnf_tview_bind(&c->view, pl);
		if (ts != BNF_TENSOR_OK)
			return from_tensor_status(ts);
		c->tensor = a->t;
		return BNF_CONST_OK;
	}
	memset(&c->view, 0, sizeof(c->view));
	c->view.dtype = BNF_DT_FLOAT;
	if ((a = bnf_node_attr(node, "value_float")) && a->has_f) {
		c->view.numel = 1;
		c->view.uniform = true;
		c->view.fill = a->f;
		return BNF_CONST_OK;
	}
	if ((a = bnf_node_attr(node, "value_floats"))) {
		c->view.rank = 1;
		c->view.dims[0] = (int64_t)a->n_floats;
		c->view.numel = a->n_floats;
		c->view.floats = a->floats;
		return BNF_CONST_OK;
	}
	snprintf(c->msg, sizeof(c->msg), "Constant node holds no float tensor bnfold reads");
	return BNF_CONST_UNSUPPORTED;
}

bnf_const_status bnf_graph_const(const bnf_graph *gi, const char *name, bnf_const *c)
{
	return resolve_const(gi, name, c, false);
}

static bnf_const_status resolve_const(const bnf_graph *gi, const char *name, bnf_const *c,
				      bool in_shape)
{
	bool exclusive = true;
	const bnf_graph *cur = gi;

	memset(c, 0, sizeof(*c));
	for (int hop = 0; hop < MAX_CHAIN; hop++) {
		const bnf_value *v = bnf_graph_value(cur, name);
		const Onnx__NodeProto *node;

		if (!v || (v->init < 0 && v->producer < 0 && !v->is_input)) {
			if (cur->parent) { /* outer-scope name */
				cur = cur->parent;
				exclusive = false;
				continue;
			}
			snprintf(c->msg, sizeof(c->msg), "'%s' is not defined in the graph", name);
			return BNF_CONST_NOT_CONSTANT;
		}
		if (v->n_consumers != 1 || v->is_output)
			exclusive = false;
		if (v->init >= 0) {
			Onnx__TensorProto *t = cur->g->initializer[v->init];
			bnf_tensor_status ts;
			if (v->trained) {
				snprintf(c->msg, sizeof(c->msg),
					 "'%s' is an initializer that the model's training_info assigns, so it is not a constant", name);
				return BNF_CONST_NOT_CONSTANT;
			}
			if (v->is_input && !bnf_graph_inputs_are_defaults(cur)) {
				snprintf(c->msg, sizeof(c->msg),
					 "'%s' is an initializer also listed as a graph input, so a caller may override it", name);
				return BNF_CONST_OVERRIDABLE;
			}
			ts = bnf_tview_from_tensor(t, &c->view, c->msg, sizeof(c->msg));
			bnf_tview_bind(&c->view, cur->payloads);
			if (ts != BNF_TENSOR_OK)
				return from_tensor_status(ts);
			c->tensor = t;
			c->exclusive = exclusive;
			c->is_initializer = true;
			c->is_graph_input = v->is_input;
			return BNF_CONST_OK;
		}
		if (v->producer < 0) {
			snprintf(c->msg, sizeof(c->msg), cur->is_function ? "'%s' is an input of the function, set per call"
									  : "'%s' is a graph input, set at run time", name);
			return BNF_CONST_NOT_CONSTANT;
		}
		node = cur->g->node[v->producer];
		for (size_t a = 0; a < node->n_attribute; a++) {
			const char *ref = node->attribute[a]->ref_attr_name;
			if (ref && ref[0]) { /* inside a function body: set per call */
				snprintf(c->msg, sizeof(c->msg), "'%s' comes from a %s node whose %s is the function's attribute '%s'",
					 name, node->op_type ? node->op_type : "?",
					 node->attribute[a]->name ? node->attribute[a]->name : "attribute", ref);
				return BNF_CONST_NOT_CONSTANT;
			}
		}
		if (bnf_node_is_onnx(node, "Identity") && node->n_input == 1) {
			name = node->input[0];
			continue;
		}
		if (bnf_node_is_onnx(node, "Constant")) {
			bnf_const_status st = constant_node(node, cur->payloads, c);
			if (st == BNF_CONST_OK && c->tensor)
				c->exclusive = exclusive;
			return st;
		}
		if (bnf_node_is_onnx(node, "ConstantOfShape")) {
			if (in_shape) {
				snprintf(c->msg, sizeof(c->msg), "'%s' is made by another ConstantOfShape", name);
				return BNF_CONST_UNSUPPORTED;
			}
			return const_of_shape(cur, node, c);
		}
		if (bnf_node_is_onnx(node, "Reshape") && node->n_input == 2)
			return reshape(cur, node, c);
		snprintf(c->msg, sizeof(c->msg), "'%s' is computed by a %s node at run time", name,
			 node->op_type ? node->op_type : "?");
		return BNF_CONST_NOT_CONSTANT;
	}
	snprintf(c->msg, sizeof(c->msg), "'%s' is reached through more than %d Identity nodes", name, MAX_CHAIN);
	return BNF_CONST_NOT_CONSTANT;
}

static int type_rank(const Onnx__ValueInfoProto *vi)
{
	const Onnx__TypeProto *tp = vi->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
	    !tp->tensor_type->shape)
		return -1;
	return (int)tp->tensor_type->shape->n_dim;
}

/* Ops whose output 0 has the rank of their input 0 (unary elementwise). */
static bool keeps_rank(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {
		"Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus",
		"Softsign", "HardSwish", "Mish", "Gelu", "Erf", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal",
		"Floor", "Ceil", "Round", "Sign", "Clip", "Cast", "Identity", "Dropout", "Sin", "Cos",
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return true;
	return false;
}

static int rank_of(const bnf_graph *gi, const char *name, int depth)
{
	for (const bnf_graph *cur = gi; cur; cur = cur->parent) {
		const Onnx__GraphProto *g = cur->g;
		const bnf_value *v = bnf_graph_value(cur, name);
		if (v && v->init >= 0)
			return (int)g->initializer[v->init]->n_dims;
		for (size_t i = 0; i < g->n_input; i++)
			if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0)
				return type_rank(g->input[i]);
		for (size_t i = 0; i < g->n_value_info; i++)
			if (g->value_info[i]->name && strcmp(g->value_info[i]->name, name) == 0)
				return type_rank(g->value_info[i]);
		for (size_t i = 0; i < g->n_output; i++)
			if (g->output[i]->name && strcmp(g->output[i]->name, name) == 0)
				return type_rank(g->output[i]);
		if (v && v->producer >= 0) {
			/* Not recorded: follow a rank-preserving producer back. */
			const Onnx__NodeProto *n = g->node[v->producer];
			if (v->producer_slot == 0 && depth < 64 && n->n_input >= 1 && n->input[0][0] && keeps_rank(n))
				return rank_of(cur, n->input[0], depth + 1);
			return -1;
		}
		if (v && v->is_input)
			return -1;
	}
	return -1;
}

int bnf_graph_rank(const bnf_graph *gi, const char *name)
{
	return rank_of(gi, name, 0);
}

void bnf_const_release(bnf_const *c)
{
	free(c->owned);
	c->owned = NULL;
	c->view.doubles = NULL;
}

#define EVAL_MAX_ELEMS (1u << 20) /* parameters, not weights */

static bnf_const_status eval(const bnf_graph *gi, const char *name, bnf_const *c, int depth);

/* The node of this graph or an enclosing one producing name, or NULL. */
static const Onnx__NodeProto *producer_of(const bnf_graph *gi, const char *name)
{
	for (const bnf_graph *cur = gi; cur; cur = cur->parent) {
		const bnf_value *v = bnf_graph_value(cur, name);
		if (v && (v->producer >= 0 || v->init >= 0 || v->is_input))
			return v->producer >= 0 ? cur->g->node[v->producer] : NULL;
	}
	return NULL;
}

static bool evaluable(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Abs", "Reciprocal"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return true;
	return false;
}

static bnf_const_status eval_node(const bnf_graph *gi, const Onnx__NodeProto *n, bnf_const *c, int depth)
{
	static const char *const binary[] = {"Add", "Sub", "Mul", "Div"};
	static const char *const unary[] = {"Sqrt", "Neg", "Abs", "Reciprocal"};
	bnf_const in[2];
	double *x[2] = {0};
	int op = -1, arity = 0;
	bnf_const_status st = BNF_CONST_NOT_CONSTANT;

	for (int i = 0; i < 4; i++) {
		if (bnf_node_is_onnx(n, binary[i]))
			op = i, arity = 2;
		if (bnf_node_is_onnx(n, unary[i]))
			op = 4 + i, arity = 1;
	}
	memset(in, 0, sizeof(in));
	snprintf(c->msg, sizeof(c->msg), "'%s' is computed by a %s node at run time", n->n_output ? n->output[0] : "?",
		 n->op_type ? n->op_type : "?");
	if (op < 0 || (int)n->n_input != arity || gi->opset < 7)
		return BNF_CONST_NOT_CONSTANT;
	for (int i = 0; i < arity; i++) {
		st = eval(gi, n->input[i], &in[i], depth + 1);
		if (st != BNF_CONST_OK || !bnf_dtype_is_float(in[i].view.dtype) || in[i].view.numel > EVAL_MAX_ELEMS ||
		    in[i].view.dtype != in[0].view.dtype) {
			if (st == BNF_CONST_OK)
				st = BNF_CONST_NOT_CONSTANT;
			goto out;
		}
	}
	{
		const bnf_tview *a = &in[0].view, *b = arity == 2 ? &in[1].view : a;
		const bnf_tview *shape = a->numel >= b->numel ? a : b;
		if (arity == 2 && a->numel != b->numel && a->numel != 1 && b->numel != 1) {
			snprintf(c->msg, sizeof(c->msg), "'%s' broadcasts in a way bnfold does not evaluate", n->output[0]);
			st = BNF_CONST_UNSUPPORTED;
			goto out;
		}
		if (arity == 2 && a->numel == b->numel && a->rank != b->rank) {
			st = BNF_CONST_UNSUPPORTED;
			goto out;
		}
		for (int i = 0; i < arity; i++)
			if (!(x[i] = malloc((in[i].view.numel ? in[i].view.numel : 1) * sizeof(double)))) {
				st = BNF_CONST_UNSUPPORTED;
				goto out;
			}
		for (int i = 0; i < arity; i++)
			bnf_tview_read(&in[i].view, x[i]);
		memset(&c->view, 0, sizeof(c->view));
		c->view = *shape;
		c->view.tensor = NULL;
		c->view.raw = NULL;
		c->view.src = NULL;
		c->view.lazy = NULL;
		c->view.uniform = false;
		c->view.floats = NULL;
		if (!(c->owned = malloc((shape->numel ? shape->numel : 1) * sizeof(double)))) {
			st = BNF_CONST_UNSUPPORTED;
			goto out;
		}
		for (size_t k = 0; k < shape->numel; k++) {
			double u = x[0][a->numel == 1 ? 0 : k], v = arity == 2 ? x[1][b->numel == 1 ? 0 : k] : 0, r;
			switch (op) {
			case 0: r = u + v; break;
			case 1: r = u - v; break;
			case 2: r = u * v; break;
			case 3: r = u / v; break;
			case 4: r = sqrt(u); break;
			case 5: r = -u; break;
			case 6: r = fabs(u); break;
			default: r = 1.0 / u; break;
			}
			c->owned[k] = bnf_round_to(shape->dtype, r);
		}
		c->view.doubles = c->owned;
		c->tensor = NULL;
		c->exclusive = false;
		st = BNF_CONST_OK;
	}
out:
	free(x[0]);
	free(x[1]);
	bnf_const_release(&in[0]);
	bnf_const_release(&in[1]);
	return st;
}

static bnf_const_status eval(const bnf_graph *gi, const char *name, bnf_const *c, int depth)
{
	bnf_const_status st = bnf_graph_const(gi, name, c);
	const Onnx__NodeProto *n;

	if (st != BNF_CONST_NOT_CONSTANT || depth > 16 || !(n = producer_of(gi, name)) || !evaluable(n))
		return st;
	return eval_node(gi, n, c, depth);
}

bnf_const_status bnf_graph_const_eval(const bnf_graph *gi, const char *name, bnf_const *c)
{
	return eval(gi, name, c, 0);
}
