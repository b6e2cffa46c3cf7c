#include "edit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "graph.h"
#include "tensor.h"

#define CHUNK 4096 /* elements transformed per step */

/* Growable list of owned strings. */
typedef struct strlist {
	char **v;
	size_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = bnf_strdup(s)))
		return -1;
	l->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort l for strlist_has: a linear search per graph input and value_info
 * was quadratic in the number of folds. */
static void strlist_sort(strlist *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

/* True when s is in l, sorted by strlist_sort. */
static bool strlist_has(const strlist *l, const char *s)
{
	return l->n > 0 && bsearch(&s, l->v, l->n, sizeof(*l->v), cmp_str) != NULL;
}

static void strlist_free(strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Room for element n of an array grown one element at a time from NULL by
 * this file only: its capacity is n rounded up to a power of two, so it
 * doubles when n reaches one.  (Growing by one each time copied the whole
 * array per element: quadratic in the number of folds.) */
static void *grow_by_one(void *arr, size_t n, size_t elem)
{
	if (n && (n & (n - 1)))
		return arr;
	return realloc(arr, (n ? 2 * n : 1) * elem);
}

/* The same for an array that came from protobuf-c with exactly n
 * elements: *room is its capacity, 0 until this file first grows it. */
static void *grow_array(void *arr, size_t n, size_t *room, size_t elem)
{
	void *p;
	if (n < *room)
		return arr;
	if (!(p = realloc(arr, (n ? 2 * n : 4) * elem)))
		return NULL;
	*room = n ? 2 * n : 4;
	return p;
}

/* One graph being folded. */
typedef struct gctx {
	bnf_graph gi;
	Onnx__GraphProto *g;
	char *gname;
	bool is_subgraph;
	const char *path;
	bool *node_removed;   /* per node, as indexed at the start */
	bool *init_removed;   /* per initializer, grows with new ones */
	size_t init_cap;
	size_t init_room, input_room; /* capacity of g->initializer, g->input once grown */
	strlist released;     /* names that lost a reader */
	strlist killed;       /* names no longer defined */
	strlist drop_inputs;  /* graph inputs to remove */
	bnf_result *res;
} gctx;

static int count_nodes(const Onnx__GraphProto *g)
{
	int n = (int)g->n_node;
	for (size_t i = 0; i < g->n_node; i++)
		for (size_t a = 0; a < g->node[i]->n_attribute; a++) {
			const Onnx__AttributeProto *at = g->node[i]->attribute[a];
			if (at->g)
				n += count_nodes(at->g);
			for (size_t k = 0; k < at->n_graphs; k++)
				n += count_nodes(at->graphs[k]);
		}
	return n;
}

static char *node_name_copy(const Onnx__NodeProto *n)
{
	return bnf_strdup(n->name ? n->name : "");
}

static int record_skip(gctx *c, const bnf_plan *p)
{
	const Onnx__NodeProto *bn = c->g->node[p->bn_node];
	bnf_result *r = c->res;
	bnf_skip *s, *v = grow_by_one(r->skips, r->n_skips, sizeof(*v));
	if (!v)
		return -1;
	r->skips = v;
	s = &v[r->n_skips];
	memset(s, 0, sizeof(*s));
	r->n_skips++;
	s->reason = p->reason;
	s->graph = bnf_strdup(c->gname);
	s->bn = node_name_copy(bn);
	s->bn_output = bnf_strdup(bn->n_output ? bn->output[0] : "");
	s->layer = p->layer_node >= 0 ? node_name_copy(c->g->node[p->layer_node]) : NULL;
	s->message = bnf_strdup(p->message);
	if (!s->graph || !s->bn || !s->bn_output || !s->message || (p->layer_node >= 0 && !s->layer))
		return -1;
	return 0;
}

/* A name not used in this graph or an enclosing one: base + suffix, then
 * base + suffix + "_2", ... */
static char *unique_name(gctx *c, const char *base, const char *suffix)
{
	bnf_value *bv = bnf_graph_value(&c->gi, base);
	/* A base named before (a weight shared by thousands of layers): every
	 * number up to the last one given is still taken, so start after it
	 * instead of trying them all again. */
	unsigned k = bv ? bv->copies + 1 : 1;

	for (unsigned tries = 0; tries < 100000; tries++, k++) {
		char *name = k == 1 ? bnf_asprintf("%s%s", base, suffix)
				    : bnf_asprintf("%s%s_%u", base, suffix, k);
		bool taken = false;
		if (!name)
			return NULL;
		for (const bnf_graph *gi = &c->gi; gi && !taken; gi = gi->parent)
			taken = bnf_graph_value(gi, name) != NULL;
		if (!taken) {
			if (bv)
				bv->copies = k;
			return name;
		}
		free(name);
	}
	return NULL;
}

/* Replace the tensor's data with raw bytes (owned), dropping typed fields. */
static void set_raw(Onnx__TensorProto *t, uint8_t *data, size_t len)
{
	free(t->float_data); t->float_data = NULL; t->n_float_data = 0;
	free(t->double_data); t->double_data = NULL; t->n_double_data = 0;
	free(t->int32_data); t->int32_data = NULL; t->n_int32_data = 0;
	if (t->has_raw_data)
		free(t->raw_data.data);
	t->has_raw_data = 1;
	t->raw_data.data = data;
	t->raw_data.len = len;
}

static Onnx__ValueInfoProto *tensor_value_info(const char *name, int dtype, size_t rank,
					       const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = malloc(sizeof(*vi));
	Onnx__TypeProto *tp = malloc(sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = malloc(sizeof(*tt));
	Onnx__TensorShapeProto *sh = malloc(sizeof(*sh));
	Onnx__TensorShapeProto__Dimension **dv = calloc(rank ? rank : 1, sizeof(*dv));
	char *nm = bnf_strdup(name);
	bool ok = vi && tp && tt && sh && dv && nm;

	for (size_t i = 0; ok && i < rank; i++) {
		if (!(dv[i] = malloc(sizeof(*dv[i])))) {
			ok = false;
			break;
		}
		onnx__tensor_shape_proto__dimension__init(dv[i]);
		dv[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		dv[i]->dim_value = dims[i];
	}
	if (!ok) {
		for (size_t i = 0; dv && i < rank; i++)
			free(dv[i]);
		free(dv); free(sh); free(tt); free(tp); free(vi); free(nm);
		return NULL;
	}
	onnx__tensor_shape_proto__init(sh);
	sh->n_dim = rank;
	sh->dim = dv;
	onnx__type_proto__tensor__init(tt);
	tt->has_elem_type = 1;
	tt->elem_type = dtype;
	tt->shape = sh;
	onnx__type_proto__init(tp);
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	onnx__value_info_proto__init(vi);
	vi->name = nm;
	vi->type = tp;
	return vi;
}

/* Append a new initializer `name` (taken) holding data (taken) to the
 * graph; in IR < 4 models also list it as a graph input, as the IR requires. */
static int add_initializer(gctx *c, char *name, int dtype, size_t rank, const int64_t *dims,
			   uint8_t *data, size_t len)
{
	Onnx__GraphProto *g = c->g;
	Onnx__TensorProto *t = malloc(sizeof(*t)), **arr;
	int64_t *d = malloc((rank ? rank : 1) * sizeof(*d));
	bnf_value *v;

	if (!t || !d)
		goto fail;
	arr = grow_array(g->initializer, g->n_initializer, &c->init_room, sizeof(*arr));
	if (!arr)
		goto fail;
	g->initializer = arr;
	if (g->n_initializer + 1 > c->init_cap) {
		size_t cap = (g->n_initializer + 1) * 2;
		bool *r = realloc(c->init_removed, cap * sizeof(*r));
		if (!r)
			goto fail;
		memset(r + c->init_cap, 0, (cap - c->init_cap) * sizeof(*r));
		c->init_removed = r;
		c->init_cap = cap;
	}
	onnx__tensor_proto__init(t);
	memcpy(d, dims, rank * sizeof(*d));
	t->n_dims = rank;
	t->dims = d;
	t->has_data_type = 1;
	t->data_type = dtype;
	t->name = name;
	t->has_raw_data = 1;
	t->raw_data.data = data;
	t->raw_data.len = len;
	g->initializer[g->n_initializer] = t;
	if (!(v = bnf_graph_value_add(&c->gi, name)))
		return -1; /* t is owned by the graph now */
	v->init = (int)g->n_initializer;
	g->n_initializer++;
	if (c->gi.ir_version < 4) {
		Onnx__ValueInfoProto *vi = tensor_value_info(name, dtype, rank, dims), **in;
		if (!vi)
			return -1;
		in = grow_array(g->input, g->n_input, &c->input_room, sizeof(*in));
		if (!in) {
			protobuf_c_message_free_unpacked(&vi->base, NULL);
			return -1;
		}
		g->input = in;
		g->input[g->n_input++] = vi;
		bnf_graph_value(&c->gi, name)->is_input = true;
	}
	return 0;
fail:
	free(t); free(d); free(name); free(data);
	return -1;
}

/* Point input slot `slot` of node at `name` (copied), moving one read in
 * the index from the old name to the new one. */
static int rewire_input(gctx *c, Onnx__NodeProto *node, size_t slot, const char *name)
{
	char *copy = bnf_strdup(name);
	bnf_value *v;
	if (!copy)
		return -1;
	if (slot >= node->n_input) {
		char **in = realloc(node->input, (slot + 1) * sizeof(*in));
		if (!in) {
			free(copy);
			return -1;
		}
		node->input = in;
		while (node->n_input < slot)
			if (!(node->input[node->n_input++] = bnf_strdup("")))
				return -1;
		node->input[node->n_input++] = copy;
	} else {
		const char *old = node->input[slot];
		if (old[0] && (v = bnf_graph_value(&c->gi, old))) {
			v->n_consumers--;
			if (strlist_add(&c->released, old) < 0)
				return -1;
		}
		free(node->input[slot]);
		node->input[slot] = copy;
	}
	if (!(v = bnf_graph_value_add(&c->gi, name)))
		return -1;
	v->n_consumers++;
	return 0;
}

/* The tensor a fold writes: edited in place when only this layer reaches
 * it, otherwise a new initializer.  *new_name is set to the name the
 * layer must read, or NULL when the old name stays. */
static int write_tensor(gctx *c, const bnf_const *src, const char *base, const char *suffix,
			int dtype, size_t rank, const int64_t *dims, uint8_t *data, size_t len,
			char **new_name)
{
	*new_name = NULL;
	if (src && src->tensor && src->exclusive) {
		set_raw(src->tensor, data, len);
		/* A folded initializer that callers could override is a constant now. */
		if (src->is_graph_input && c->gi.ir_version >= 4 && strlist_add(&c->drop_inputs, src->tensor->name) < 0)
			return -1;
		return 0;
	}
	if (!(*new_name = unique_name(c, base, suffix))) {
		free(data);
		return -1;
	}
	return add_initializer(c, bnf_strdup(*new_name), dtype, rank, dims, data, len);
}

static int record_fusion(gctx *c, const bnf_plan *p, bool weight_copied, bool bias_created)
{
	const Onnx__NodeProto *layer = c->g->node[p->layer_node];
	const Onnx__NodeProto *bn = c->g->node[p->bn_node];
	bnf_result *r = c->res;
	bnf_fusion *f, *v = grow_by_one(r->fusions, r->n_fusions, sizeof(*v));
	if (!v)
		return -1;
	r->fusions = v;
	f = &v[r->n_fusions];
	memset(f, 0, sizeof(*f));
	r->n_fusions++;
	f->pattern = p->pattern;
	f->graph = bnf_strdup(c->gname);
	f->layer = node_name_copy(layer);
	f->layer_op = bnf_strdup(layer->op_type);
	f->bn = node_name_copy(bn);
	f->bn_output = bnf_strdup(bn->output[0]);
	f->weight = bnf_strdup(layer->input[1]);
	f->bias = bnf_strdup(layer->input[2]);
	f->channels = p->channels;
	f->dtype = p->dtype;
	f->eps = p->eps;
	f->weight_copied = weight_copied;
	f->bias_created = bias_created;
	return f->graph && f->layer && f->layer_op && f->bn && f->bn_output && f->weight && f->bias ? 0 : -1;
}

/* Carry out a plan whose reason is BNF_FOLD. Returns 1 when folded, 0 when
 * the fold turned out impossible here (recorded as a skip), -1 on error. */
static int apply(gctx *c, bnf_plan *p)
{
	Onnx__NodeProto *layer = c->g->node[p->layer_node];
	Onnx__NodeProto *bn = c->g->node[p->bn_node];
	const bnf_tview *w = &p->weight.view;
	size_t es = bnf_dtype_size(p->dtype), wbytes;
	bool weight_inplace = p->weight.tensor && p->weight.exclusive;
	bool bias_inplace = p->has_bias && p->bias.tensor && p->bias.exclusive;
	uint8_t *wdata = NULL, *bdata = NULL;
	double *scratch = NULL;
	char *wname = NULL, *bname = NULL, *out_copy = NULL;
	bnf_value *v;
	int64_t cdim = (int64_t)p->channels;
	int rc = -1;

	if (c->is_subgraph && c->gi.ir_version < 4 && (!weight_inplace || !bias_inplace)) {
		p->reason = BNF_UNSUPPORTED_STORAGE;
		snprintf(p->message, sizeof(p->message),
			 "folding here needs a new initializer inside a subgraph, which IR %d cannot declare",
			 c->gi.ir_version);
		return record_skip(c, p) < 0 ? -1 : 0;
	}
	if (!bnf_mul_size(w->numel, es, &wbytes) || !(wdata = malloc(wbytes ? wbytes : 1)) ||
	    !(bdata = malloc(p->channels * es)) || !(scratch = malloc(CHUNK * sizeof(double))))
		goto oom;
	for (size_t done = 0; done < w->numel; done += CHUNK) {
		size_t n = w->numel - done < CHUNK ? w->numel - done : CHUNK;
		bnf_transform_apply(&p->transform, w, done, n, scratch, wdata + done * es);
	}
	for (size_t ch = 0; ch < p->channels; ch++)
		bnf_encode(p->dtype, p->new_bias[ch], bdata + ch * es);
	if (!weight_inplace) { /* bnf_plan_bn checked that it fits */
		c->gi.new_bytes_left -= wbytes < c->gi.new_bytes_left ? wbytes : c->gi.new_bytes_left;
		c->res->new_bytes += wbytes;
	}

	if (write_tensor(c, &p->weight, layer->input[1], "_bnfold", p->dtype, w->rank, w->dims,
			 wdata, wbytes, &wname) < 0)
		goto oom_owned;
	wdata = NULL;
	if (wname && rewire_input(c, layer, 1, wname) < 0)
		goto oom_owned;
	if (write_tensor(c, p->has_bias ? &p->bias : NULL, p->has_bias ? layer->input[2] : bn->output[0],
			 p->has_bias ? "_bnfold" : "_bnfold_bias", p->dtype, 1, &cdim, bdata,
			 p->channels * es, &bname) < 0)
		goto oom_owned;
	bdata = NULL;
	if (bname && rewire_input(c, layer, 2, bname) < 0)
		goto oom_owned;

	/* The layer takes over the BN's output name; the BN goes. */
	if (!(out_copy = bnf_strdup(bn->output[0])) || strlist_add(&c->killed, layer->output[0]) < 0)
		goto oom_owned;
	if ((v = bnf_graph_value(&c->gi, layer->output[0]))) {
		v->producer = -1;
		v->n_consumers = 0;
	}
	free(layer->output[0]);
	layer->output[0] = out_copy;
	out_copy = NULL;
	if ((v = bnf_graph_value(&c->gi, bn->output[0]))) {
		v->producer = p->layer_node;
		v->producer_slot = 0;
	}
	for (int i = 1; i < 5; i++) {
		if ((v = bnf_graph_value(&c->gi, bn->input[i])))
			v->n_consumers--;
		if (strlist_add(&c->released, bn->input[i]) < 0)
			goto oom_owned;
	}
	c->node_removed[p->bn_node] = true;
	if (record_fusion(c, p, !weight_inplace, !p->has_bias) < 0)
		goto oom_owned;
	rc = 1;
	goto done;
oom:
	free(wdata);
	free(bdata);
oom_owned:
	bnf_error("%s: out of memory folding '%s'", c->path, bn->output[0]);
done:
	free(scratch);
	free(wname);
	free(bname);
	free(out_copy);
	return rc;
}

/* Drop initializers and constant-producing nodes that lost their last
 * reader to a fold (never ones that were unused to begin with). */
static int sweep(gctx *c)
{
	for (size_t k = 0; k < c->released.n; k++) {
		const char *name = c->released.v[k];
		bnf_value *v = bnf_graph_value(&c->gi, name);
		Onnx__NodeProto *node;

		if (!v || v->n_consumers > 0 || v->is_output)
			continue;
		if (v->init >= 0) {
			if (c->init_removed[v->init])
				continue;
			c->init_removed[v->init] = true;
			if (v->is_input && strlist_add(&c->drop_inputs, name) < 0)
				return -1;
			if (strlist_add(&c->killed, name) < 0)
				return -1;
			continue;
		}
		if (v->producer < 0 || c->node_removed[v->producer])
			continue;
		node = c->g->node[v->producer];
		if (!bnf_node_is_onnx(node, "Constant") && !bnf_node_is_onnx(node, "Identity") &&
		    !bnf_node_is_onnx(node, "ConstantOfShape"))
			continue;
		bool unused = true;
		for (size_t o = 0; o < node->n_output; o++) {
			bnf_value *ov = node->output[o][0] ? bnf_graph_value(&c->gi, node->output[o]) : NULL;
			if (ov && (ov->n_consumers > 0 || ov->is_output))
				unused = false;
		}
		if (!unused)
			continue;
		c->node_removed[v->producer] = true;
		for (size_t o = 0; o < node->n_output; o++)
			if (node->output[o][0] && strlist_add(&c->killed, node->output[o]) < 0)
				return -1;
		for (size_t i = 0; i < node->n_input; i++) {
			bnf_value *iv;
			if (!node->input[i][0])
				continue;
			if ((iv = bnf_graph_value(&c->gi, node->input[i])))
				iv->n_consumers--;
			if (strlist_add(&c->released, node->input[i]) < 0)
				return -1;
		}
	}
	return 0;
}

/* Remove what was marked, freeing it. */
static void compact(gctx *c)
{
	Onnx__GraphProto *g = c->g;
	size_t j = 0;

	strlist_sort(&c->drop_inputs);
	strlist_sort(&c->killed);
	for (size_t i = 0; i < g->n_node; i++) {
		if (c->node_removed[i])
			protobuf_c_message_free_unpacked(&g->node[i]->base, NULL);
		else
			g->node[j++] = g->node[i];
	}
	g->n_node = j;
	j = 0;
	for (size_t i = 0; i < g->n_initializer; i++) {
		if (c->init_removed[i])
			protobuf_c_message_free_unpacked(&g->initializer[i]->base, NULL);
		else
			g->initializer[j++] = g->initializer[i];
	}
	g->n_initializer = j;
	j = 0;
	for (size_t i = 0; i < g->n_input; i++) {
		if (g->input[i]->name && strlist_has(&c->drop_inputs, g->input[i]->name)) {
			protobuf_c_message_free_unpacked(&g->input[i]->base, NULL);
			c->res->inputs_removed++;
		} else {
			g->input[j++] = g->input[i];
		}
	}
	g->n_input = j;
	/* value_info of names that no longer exist would describe nothing. */
	j = 0;
	for (size_t i = 0; i < g->n_value_info; i++) {
		const char *name = g->value_info[i]->name;
		bnf_value *v = name ? bnf_graph_value(&c->gi, name) : NULL;
		bool gone = name && strlist_has(&c->killed, name) &&
			    (!v || (v->producer < 0 && (v->init < 0 || c->init_removed[v->init]) && !v->is_input));
		if (gone)
			protobuf_c_message_free_unpacked(&g->value_info[i]->base, NULL);
		else
			g->value_info[j++] = g->value_info[i];
	}
	g->n_value_info = j;
}

static int fold_graph(Onnx__GraphProto *g, const char *gname, const bnf_graph *parent,
		      const char *path, int ir, int opset, const bnf_fold_options *opt, bnf_result *res);

static int fold_subgraphs(gctx *c, int ir, int opset, const bnf_fold_options *opt)
{
	char lb[64];
	for (size_t n = 0; n < c->g->n_node; n++) {
		const Onnx__NodeProto *node = c->g->node[n];
		if (c->node_removed[n])
			continue;
		for (size_t a = 0; a < node->n_attribute; a++) {
			const Onnx__AttributeProto *at = node->attribute[a];
			size_t count = at->n_graphs + (at->g ? 1 : 0);
			for (size_t k = 0; k < count; k++) {
				Onnx__GraphProto *sg = at->g && k == 0 ? at->g : at->graphs[k - (at->g ? 1 : 0)];
				char *name = sg->name && sg->name[0]
						     ? bnf_strdup(sg->name)
						     : bnf_asprintf("%s/%s/%s", c->gname, bnf_node_label(node, (int)n, lb, sizeof(lb)),
								    at->name ? at->name : "");
				int r;
				if (!name)
					return bnf_error("%s: out of memory", c->path);
				r = fold_graph(sg, name, &c->gi, c->path, ir, opset, opt, c->res);
				free(name);
				if (r < 0)
					return -1;
			}
		}
	}
	return 0;
}

static int fold_graph(Onnx__GraphProto *g, const char *gname, const bnf_graph *parent,
		      const char *path, int ir, int opset, const bnf_fold_options *opt, bnf_result *res)
{
	gctx c;
	bool *handled = NULL, progress = true;
	size_t max_new;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.g = g;
	c.is_subgraph = parent != NULL;
	c.path = path;
	c.res = res;
	if (bnf_graph_build(&c.gi, g, parent, path, ir, opset, opt->fold_overridable) < 0)
		return -1;
	max_new = opt->max_new_bytes ? opt->max_new_bytes : BNF_MAX_NEW_BYTES;
	c.gi.new_bytes_left = max_new > res->new_bytes ? max_new - res->new_bytes : 0;
	c.init_cap = g->n_initializer + 1;
	c.node_removed = calloc(g->n_node + 1, sizeof(bool));
	c.init_removed = calloc(c.init_cap, sizeof(bool));
	handled = calloc(g->n_node + 1, sizeof(bool));
	if (!(c.gname = bnf_strdup(gname)) || !c.node_removed || !c.init_removed || !handled) {
		bnf_error("%s: out of memory", path);
		goto out;
	}
	for (size_t n = 0; n < g->n_node; n++)
		if (bnf_node_is_onnx(g->node[n], "BatchNormalization"))
			res->bn_found++;
	/* Fold until nothing more folds: a fold can make the next one possible
	 * (BN after BN).  Producers come first in gi.order, so one pass folds
	 * a chain and the second finds nothing left (passes over the listed
	 * order were quadratic in the length of a chain listed backwards). */
	while (progress) {
		progress = false;
		for (size_t k = 0; k < g->n_node; k++) {
			size_t n = c.gi.order[k];
			bnf_plan p;
			int r = 0;
			if (c.node_removed[n] || handled[n] || !bnf_node_is_onnx(g->node[n], "BatchNormalization"))
				continue;
			if (bnf_plan_bn(&c.gi, (int)n, &p) < 0) {
				bnf_plan_free(&p);
				goto out;
			}
			if (p.reason == BNF_FOLD) {
				r = apply(&c, &p);
				if (r == 0)
					handled[n] = true;
				progress = progress || r == 1;
			}
			bnf_plan_free(&p);
			if (r < 0)
				goto out;
		}
	}
	for (size_t n = 0; n < g->n_node; n++) {
		bnf_plan p;
		int r;
		if (c.node_removed[n] || handled[n] || !bnf_node_is_onnx(g->node[n], "BatchNormalization"))
			continue;
		if (bnf_plan_bn(&c.gi, (int)n, &p) < 0) {
			bnf_plan_free(&p);
			goto out;
		}
		r = record_skip(&c, &p);
		bnf_plan_free(&p);
		if (r < 0) {
			bnf_error("%s: out of memory", path);
			goto out;
		}
	}
	if (sweep(&c) < 0) {
		bnf_error("%s: out of memory", path);
		goto out;
	}
	if (fold_subgraphs(&c, ir, opset, opt) < 0)
		goto out;
	compact(&c);
	rc = 0;
out:
	bnf_graph_free(&c.gi);
	free(c.node_removed);
	free(c.init_removed);
	free(handled);
	free(c.gname);
	strlist_free(&c.released);
	strlist_free(&c.killed);
	strlist_free(&c.drop_inputs);
	return rc;
}

int bnf_fold_model(Onnx__ModelProto *m, const char *path, const bnf_fold_options *opt,
		   bnf_result *res)
{
	int opset = -1;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < m->n_opset_import; i++) {
		const char *d = m->opset_import[i]->domain;
		if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && m->opset_import[i]->has_version)
			opset = (int)m->opset_import[i]->version;
	}
	res->ir_version = m->has_ir_version ? m->ir_version : 0;
	res->opset = opset;
	res->producer_name = bnf_strdup(m->producer_name ? m->producer_name : "");
	res->producer_version = bnf_strdup(m->producer_version ? m->producer_version : "");
	if (!res->producer_name || !res->producer_version)
		return bnf_error("%s: out of memory", path);
	if (!m->graph)
		return bnf_error("%s: the model has no graph", path);
	if (opset < 0)
		opset = 1; /* no default-domain import: the oldest rules apply */
	res->nodes_before = (size_t)count_nodes(m->graph);
	if (fold_graph(m->graph, m->graph->name && m->graph->name[0] ? m->graph->name : "main", NULL, path,
		       (int)res->ir_version, opset, opt, res) < 0)
		return -1;
	res->nodes_after = (size_t)count_nodes(m->graph);
	return 0;
}

void bnf_result_free(bnf_result *r)
{
	for (size_t i = 0; i < r->n_fusions; i++) {
		bnf_fusion *f = &r->fusions[i];
		free(f->graph); free(f->layer); free(f->layer_op); free(f->bn);
		free(f->bn_output); free(f->weight); free(f->bias);
	}
	for (size_t i = 0; i < r->n_skips; i++) {
		bnf_skip *s = &r->skips[i];
		free(s->graph); free(s->bn); free(s->bn_output); free(s->layer); free(s->message);
	}
	free(r->fusions);
	free(r->skips);
	free(r->producer_name);
	free(r->producer_version);
	memset(r, 0, sizeof(*r));
}
