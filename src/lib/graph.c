#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

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
