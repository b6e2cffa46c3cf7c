#include "edit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "graph.h"
#include "payload.h"
#include "tensor.h"
#include "verify.h"

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

/* One run over a model. */
typedef struct frun {
	const char *path;
	int ir;
	const bnf_fold_options *opt;
	bnf_result *res;
	const Onnx__ModelProto *model;
	/* Every value name in the model's graphs, subgraphs included, and every
	 * name bnfold adds: a new name must differ from all of them, since a
	 * subgraph may neither reuse nor shadow a name of an enclosing graph. */
	bnf_graph names;
} frun;

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
	bool in_function;     /* a function body: no initializers, so no new tensors */
	struct gctx *parent;  /* the enclosing graph's context, or NULL */
	frun *run;
	const char *path;
	bool *node_removed;   /* per node, as indexed at the start */
	bool *init_removed;   /* per initializer, grows with new ones */
	size_t init_cap;
	size_t init_room, input_room; /* capacity of g->initializer, g->input once grown */
	strlist released;     /* names that lost a reader */
	strlist killed;       /* names no longer defined */
	strlist drop_inputs;  /* graph inputs to remove */
	bnf_payloads *pl;     /* may be NULL */
	bnf_result *res;
} gctx;

/* Free payload memory, unless it is borrowed (see payload.h). */
static void free_payload(const gctx *c, void *p)
{
	if (!bnf_payloads_borrowed(c->pl, p))
		free(p);
}

/* Free a message through the payload-aware allocator. */
static void free_message(const gctx *c, ProtobufCMessage *m)
{
	protobuf_c_message_free_unpacked(m, c->pl ? &c->pl->allocator : NULL);
}

/* Nodes of a node list and of the subgraphs in it. */
static size_t count_nodes(Onnx__NodeProto *const *node, size_t n_node)
{
	size_t n = n_node;
	for (size_t i = 0; i < n_node; i++)
		for (size_t a = 0; a < node[i]->n_attribute; a++) {
			const Onnx__AttributeProto *at = node[i]->attribute[a];
			if (at->g)
				n += count_nodes(at->g->node, at->g->n_node);
			for (size_t k = 0; k < at->n_graphs; k++)
				n += count_nodes(at->graphs[k]->node, at->graphs[k]->n_node);
		}
	return n;
}

/* Nodes of the model: graph, subgraphs and function bodies. */
static size_t count_model_nodes(const Onnx__ModelProto *m)
{
	size_t n = count_nodes(m->graph->node, m->graph->n_node);
	for (size_t i = 0; i < m->n_functions; i++)
		n += count_nodes(m->functions[i]->node, m->functions[i]->n_node);
	return n;
}

static char *node_name_copy(const Onnx__NodeProto *n)
{
	return bnf_strdup(n->name ? n->name : "");
}

static int record_skip(gctx *c, const bnf_plan *p)
{
	const Onnx__NodeProto *bn = c->g->node[p->node];
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

/* A name used nowhere in the model (see frun.names): base + suffix, then
 * base + suffix + "_2", ...; it is taken from then on. */
static char *unique_name(const gctx *c, const char *base, const char *suffix)
{
	bnf_value *bv = bnf_graph_value(&c->run->names, base);
	/* A base named before (a weight shared by thousands of layers): every
	 * number up to the last one given is still taken, so start after it
	 * instead of trying them all again. */
	unsigned k = bv ? bv->copies + 1 : 1;

	for (unsigned tries = 0; tries < 100000; tries++, k++) {
		char *name = k == 1 ? bnf_asprintf("%s%s", base, suffix)
				    : bnf_asprintf("%s%s_%u", base, suffix, k);
		if (!name)
			return NULL;
		if (!bnf_graph_value(&c->run->names, name)) {
			if (!bnf_graph_value_add(&c->run->names, name)) {
				free(name);
				return NULL;
			}
			if ((bv = bnf_graph_value(&c->run->names, base))) /* the add may have moved it */
				bv->copies = k;
			return name;
		}
		free(name);
	}
	return NULL;
}

static bool defined_here(const bnf_value *v)
{
	return v->init >= 0 || v->producer >= 0 || v->is_input;
}

/* One node input reading `name` is gone.  An enclosing graph's index counts
 * the reads of its names inside subgraphs too, so a name from the outer
 * scope loses the read in every graph up to the one defining it, which may
 * then drop it (sweep). */
static int release(gctx *c, const char *name)
{
	bnf_value *v = bnf_graph_value(&c->gi, name);

	if (v)
		v->n_consumers--;
	if (strlist_add(&c->released, name) < 0)
		return -1;
	if (v && defined_here(v))
		return 0;
	for (gctx *p = c->parent; p; p = p->parent) {
		if (!(v = bnf_graph_value(&p->gi, name)))
			continue;
		v->n_consumers--;
		if (defined_here(v))
			return strlist_add(&p->released, name);
	}
	return 0;
}

/* Replace the tensor's data with raw bytes (owned), dropping typed fields. */
static void set_raw(const gctx *c, Onnx__TensorProto *t, uint8_t *data, size_t len)
{
	free(t->float_data); t->float_data = NULL; t->n_float_data = 0;
	free(t->double_data); t->double_data = NULL; t->n_double_data = 0;
	free(t->int32_data); t->int32_data = NULL; t->n_int32_data = 0;
	if (t->has_raw_data)
		free_payload(c, t->raw_data.data);
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

	if (!t || !d || !name)
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
			free_message(c, &vi->base);
			return -1;
		}
		g->input = in;
		g->input[g->n_input++] = vi;
		bnf_graph_value(&c->gi, name)->is_input = true;
	}
	return 0;
fail:
	free(t); free(d); free(name);
	free_payload(c, data);
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
		if (old[0] && release(c, old) < 0)
			return -1;
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
 * layer must read, or NULL when the old name stays.  Takes ownership of
 * data, also on failure. */
static int write_tensor(gctx *c, const bnf_const *src, const char *base, const char *suffix,
			int dtype, size_t rank, const int64_t *dims, uint8_t *data, size_t len,
			char **new_name)
{
	*new_name = NULL;
	if (src && src->tensor && src->exclusive) {
		set_raw(c, src->tensor, data, len);
		/* A folded initializer that callers could override is a constant now. */
		if (src->is_graph_input && c->gi.ir_version >= 4 && strlist_add(&c->drop_inputs, src->tensor->name) < 0)
			return -1;
		return 0;
	}
	if (!(*new_name = unique_name(c, base, suffix))) {
		free_payload(c, data);
		return -1;
	}
	return add_initializer(c, bnf_strdup(*new_name), dtype, rank, dims, data, len);
}

static int record_fusion(gctx *c, const bnf_plan *p, const char *layer_op, bool weight_copied,
			 bool bias_created, const bnf_verify *vr)
{
	const Onnx__NodeProto *layer = c->g->node[p->layer_node];
	const Onnx__NodeProto *node = c->g->node[p->node];
	bnf_result *r = c->res;
	bnf_fusion *f, *v = grow_by_one(r->fusions, r->n_fusions, sizeof(*v));
	if (!v)
		return -1;
	r->fusions = v;
	f = &v[r->n_fusions];
	memset(f, 0, sizeof(*f));
	r->n_fusions++;
	f->pattern = p->pattern;
	f->is_bn = p->is_bn;
	f->graph = bnf_strdup(c->gname);
	f->layer = node_name_copy(layer);
	f->layer_op = bnf_strdup(layer_op);
	f->layer_op_after = bnf_strdup(layer->op_type);
	f->bn = node_name_copy(node);
	f->node_op = bnf_strdup(node->op_type);
	f->bn_output = bnf_strdup(node->output[0]);
	f->weight = bnf_strdup(layer->input[1]);
	f->bias = bnf_strdup(layer->n_input > 2 ? layer->input[2] : "");
	f->channels = p->channels;
	f->dtype = p->dtype;
	f->eps = p->eps;
	f->weight_copied = weight_copied;
	f->bias_created = bias_created;
	if (vr) {
		f->verified = true;
		f->verify = *vr;
	}
	return f->graph && f->layer && f->layer_op && f->layer_op_after && f->bn && f->node_op &&
	       f->bn_output && f->weight && f->bias ? 0 : -1;
}

/* Set a float attribute that exists on node (Gemm beta) to x. */
static void set_float_attr(Onnx__NodeProto *node, const char *name, float x)
{
	Onnx__AttributeProto *a = bnf_node_attr(node, name);
	if (a) {
		a->has_f = 1;
		a->f = x;
	}
}

/* Carry out a plan whose reason is BNF_FOLD, recording vr (the check made
 * before, or NULL) with the fusion. Returns 1 when folded, 0 when the fold
 * turned out impossible here (recorded as a skip), -1 on error. */
static int apply(gctx *c, bnf_plan *p, const bnf_verify *vr)
{
	Onnx__NodeProto *layer = c->g->node[p->layer_node];
	Onnx__NodeProto *node = c->g->node[p->node];
	const bnf_tview *w = &p->weight.view;
	size_t es = bnf_dtype_size(p->dtype), wbytes = 0;
	bool weight_inplace = !p->scale_weight || (p->weight.tensor && p->weight.exclusive);
	bool bias_inplace = p->has_bias && p->bias.tensor && p->bias.exclusive &&
			    p->bias.view.rank == 1 && p->bias.view.numel == p->bias_len;
	bool new_tensor = (p->scale_weight && !weight_inplace) || (p->write_bias && !bias_inplace);
	uint8_t *wdata = NULL, *bdata = NULL;
	double *scratch = NULL;
	char *wname = NULL, *bname = NULL, *out_copy = NULL, *layer_op = NULL;
	bnf_value *v;
	int64_t bdim = (int64_t)p->bias_len;
	int rc = -1;

	if (new_tensor && ((c->is_subgraph && c->gi.ir_version < 4) || c->in_function)) {
		p->reason = BNF_UNSUPPORTED_STORAGE;
		if (c->in_function)
			snprintf(p->message, sizeof(p->message),
				 "folding here needs a new %s tensor, and a function body has no initializers",
				 p->scale_weight && !weight_inplace ? "weight" : "bias");
		else
			snprintf(p->message, sizeof(p->message),
				 "folding here needs a new initializer inside a subgraph, which IR %d cannot declare",
				 c->gi.ir_version);
		if (!p->is_bn)
			return 0; /* Mul/Add nodes are not reported */
		return record_skip(c, p) < 0 ? -1 : 0;
	}
	if (!(layer_op = bnf_strdup(layer->op_type)) || !(bdata = malloc(p->bias_len * es + 1)) ||
	    !(scratch = malloc(CHUNK * sizeof(double))))
		goto oom;
	if (p->scale_weight) {
		if (!bnf_mul_size(w->numel, es, &wbytes))
			goto oom;
		/* Not in memory: computed chunk by chunk when written (always for
		 * external data, so that it stays external in the output). */
		if (c->pl && ((w->src && w->src->external) ||
			      (!c->pl->materialize && (w->src || w->lazy || w->uniform)))) {
			if (!(wdata = bnf_payloads_add(c->pl, w, &p->transform, wbytes)))
				goto done;
		} else {
			if (!(wdata = malloc(wbytes ? wbytes : 1)))
				goto oom;
			for (size_t done = 0; done < w->numel; done += CHUNK) {
				size_t n = w->numel - done < CHUNK ? w->numel - done : CHUNK;
				if (!bnf_transform_apply(&p->transform, w, done, n, scratch, wdata + done * es))
					c->res->unscanned_nonfinite = true;
			}
		}
		int wr = write_tensor(c, &p->weight, layer->input[1], "_bnfold", p->dtype, w->rank, w->dims,
				      wdata, wbytes, &wname);
		wdata = NULL; /* write_tensor owns it, whatever the outcome */
		if (wr < 0)
			goto oom;
		if (wname && rewire_input(c, layer, 1, wname) < 0)
			goto oom;
	}
	if (p->write_bias) {
		const bnf_const *old = p->has_bias && bias_inplace ? &p->bias : NULL;
		for (size_t ch = 0; ch < p->bias_len; ch++)
			bnf_encode(p->dtype, p->new_bias[ch], bdata + ch * es);
		int br = write_tensor(c, old, p->has_bias ? layer->input[2] : node->output[0],
				      p->has_bias ? "_bnfold" : "_bnfold_bias", p->dtype, 1, &bdim, bdata,
				      p->bias_len * es, &bname);
		bdata = NULL;
		if (br < 0)
			goto oom;
		if (bname && rewire_input(c, layer, 2, bname) < 0)
			goto oom;
	}
	if (p->new_op_type) {
		char *op = bnf_strdup(p->new_op_type);
		if (!op)
			goto oom;
		free(layer->op_type);
		layer->op_type = op;
	}
	if (p->reset_gemm_beta)
		set_float_attr(layer, "beta", 1.0f);
	if (p->scale_weight && !weight_inplace) { /* the plan checked that it fits */
		c->gi.new_bytes_left -= wbytes < c->gi.new_bytes_left ? wbytes : c->gi.new_bytes_left;
		c->res->new_bytes += wbytes;
	}

	if (p->absorb == BNF_ABSORB_OUTPUT) {
		/* The layer (or the last Transpose/Identity after it) takes over
		 * the node's output name; the node goes. */
		Onnx__NodeProto *tail = p->tail_node >= 0 ? c->g->node[p->tail_node] : layer;
		for (size_t i = 0; i < node->n_input; i++) {
			if (strcmp(node->input[i], tail->output[0]) == 0 || !node->input[i][0])
				continue;
			if (release(c, node->input[i]) < 0)
				goto oom;
		}
		if (!(out_copy = bnf_strdup(node->output[0])) || strlist_add(&c->killed, tail->output[0]) < 0)
			goto oom;
		if ((v = bnf_graph_value(&c->gi, tail->output[0]))) {
			v->producer = -1;
			v->n_consumers = 0;
		}
		free(tail->output[0]);
		tail->output[0] = out_copy;
		out_copy = NULL;
		if ((v = bnf_graph_value(&c->gi, node->output[0]))) {
			v->producer = p->tail_node >= 0 ? p->tail_node : p->layer_node;
			v->producer_slot = 0;
		}
	} else {
		/* The layer reads what the BN read; the BN goes. */
		if (!(out_copy = bnf_strdup(node->input[0])) || strlist_add(&c->killed, node->output[0]) < 0)
			goto oom;
		free(layer->input[0]);
		layer->input[0] = out_copy;
		out_copy = NULL;
		if ((v = bnf_graph_value(&c->gi, node->output[0]))) {
			v->producer = -1;
			v->n_consumers = 0;
		}
		for (size_t i = 1; i < node->n_input; i++)
			if (release(c, node->input[i]) < 0)
				goto oom;
	}
	c->node_removed[p->node] = true;
	if (record_fusion(c, p, layer_op, p->scale_weight && !weight_inplace, p->write_bias && !p->has_bias, vr) < 0)
		goto oom;
	rc = 1;
	goto done;
oom:
	bnf_error("%s: out of memory folding '%s'", c->path, node->output[0]);
done:
	free_payload(c, wdata); /* NULL once handed to the model */
	free(bdata);
	free(scratch);
	free(wname);
	free(bname);
	free(out_copy);
	free(layer_op);
	return rc;
}

/* The ops that compute constants for a fold (graph.c follows and
 * evaluates them): once nothing reads their outputs they are dead code. */
static bool removable_when_unused(const Onnx__NodeProto *node)
{
	static const char *const ops[] = {"Constant", "Identity", "ConstantOfShape", "Reshape", "Add", "Sub",
					  "Mul", "Div", "Sqrt", "Neg", "Abs", "Reciprocal"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(node, ops[i]))
			return true;
	return false;
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
		if (!removable_when_unused(node))
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
		for (size_t i = 0; i < node->n_input; i++)
			if (node->input[i][0] && release(c, node->input[i]) < 0)
				return -1;
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
			free_message(c, &g->node[i]->base);
		else
			g->node[j++] = g->node[i];
	}
	g->n_node = j;
	j = 0;
	for (size_t i = 0; i < g->n_initializer; i++) {
		if (c->init_removed[i])
			free_message(c, &g->initializer[i]->base);
		else
			g->initializer[j++] = g->initializer[i];
	}
	g->n_initializer = j;
	j = 0;
	for (size_t i = 0; i < g->n_input; i++) {
		if (g->input[i]->name && strlist_has(&c->drop_inputs, g->input[i]->name)) {
			free_message(c, &g->input[i]->base);
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
			free_message(c, &g->value_info[i]->base);
		else
			g->value_info[j++] = g->value_info[i];
	}
	g->n_value_info = j;
}

static int fold_graph(frun *run, Onnx__GraphProto *g, const char *gname, gctx *parent, int opset,
		      bool in_function);

static int fold_subgraphs(gctx *c)
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
				r = fold_graph(c->run, sg, name, c, c->gi.opset, false);
				free(name);
				if (r < 0)
					return -1;
			}
		}
	}
	return 0;
}

static int fold_graph(frun *run, Onnx__GraphProto *g, const char *gname, gctx *parent, int opset,
		      bool in_function)
{
	const bnf_fold_options *opt = run->opt;
	const char *path = run->path;
	bnf_result *res = run->res;
	gctx c;
	bool *handled = NULL, progress = true;
	size_t max_new;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.g = g;
	c.is_subgraph = parent != NULL;
	c.in_function = in_function;
	c.parent = parent;
	c.run = run;
	c.path = path;
	c.res = res;
	if (bnf_graph_build(&c.gi, g, parent ? &parent->gi : NULL, path, run->ir, opset, opt->fold_overridable) < 0)
		return -1;
	if (g == run->model->graph &&
	    bnf_graph_add_training(&c.gi, run->model->training_info, run->model->n_training_info) < 0) {
		bnf_graph_free(&c.gi);
		return bnf_error("%s: out of memory", path);
	}
	c.pl = opt->payloads;
	c.gi.payloads = opt->payloads;
	c.gi.defer_scan = opt->defer_scan;
	c.gi.is_function = in_function;
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
	 * (BN after BN, Add before BN).  Producers come first in gi.order, so one
	 * pass folds a chain and the second finds nothing left. */
	while (progress) {
		progress = false;
		for (size_t k = 0; k < g->n_node; k++) {
			size_t n = c.gi.order[k];
			bnf_plan p;
			bool is_bn = bnf_node_is_onnx(g->node[n], "BatchNormalization");
			int r = 0;
			if (c.node_removed[n] || handled[n])
				continue;
			if (is_bn)
				r = bnf_plan_bn(&c.gi, (int)n, &p);
			else if (bnf_node_is_onnx(g->node[n], "Mul") || bnf_node_is_onnx(g->node[n], "Add"))
				r = bnf_plan_affine(&c.gi, (int)n, &p);
			else
				continue;
			if (r < 0) {
				bnf_plan_free(&p);
				goto out;
			}
			if (p.reason == BNF_FOLD) {
				/* Verify reads the original tensors: before apply edits
				 * them, or later from the input file (defer_verify). */
				bnf_verify vr;
				bnf_verify_job *job = NULL;
				bnf_verify_config vcfg = {.no_simd = opt->no_simd, .threads = opt->threads};
				if (!opt->no_verify &&
				    bnf_verify_plan_later(&c.gi, &p, opt->tolerance_set ? opt->tolerance : -1.0, &vcfg,
							  &vr, opt->defer_verify ? &job : NULL) < 0) {
					bnf_plan_free(&p);
					goto out;
				}
				r = apply(&c, &p, opt->no_verify || job ? NULL : &vr);
				if (r == 0)
					handled[n] = true;
				progress = progress || r == 1;
				if (job && r == 1 && bnf_verify_batch_add(&res->pending, job, res->n_fusions - 1) < 0)
					r = -1;
				else if (job && r != 1)
					bnf_verify_job_free(job);
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
	if (fold_subgraphs(&c) < 0)
		goto out;
	/* Folds in subgraphs may have left names of this graph without a reader. */
	if (sweep(&c) < 0) {
		bnf_error("%s: out of memory", path);
		goto out;
	}
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

/* The default-domain opset imported by a list, or def. */
static int default_opset(Onnx__OperatorSetIdProto *const *imports, size_t n, int def)
{
	for (size_t i = 0; i < n; i++) {
		const char *d = imports[i]->domain;
		if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && imports[i]->has_version)
			def = (int)imports[i]->version;
	}
	return def;
}

/* Fold the BNs of a function body (ModelProto.functions) like a graph whose
 * inputs are the function's inputs.  A body has no initializers: a fold is
 * made only when it can edit Constant nodes in place, else the BN is
 * reported (unsupported_storage).  Editing the body is right for every
 * call, since the BN and its layer are both in it. */
static int fold_function(frun *run, Onnx__FunctionProto *f, int model_opset)
{
	size_t n_io = f->n_input + f->n_output;
	Onnx__ValueInfoProto *vi = calloc(n_io + 1, sizeof(*vi));
	Onnx__ValueInfoProto **io = calloc(n_io + 1, sizeof(*io));
	Onnx__GraphProto g;
	char *gname = bnf_asprintf("function %s%s%s", f->domain && f->domain[0] ? f->domain : "",
				   f->domain && f->domain[0] ? "." : "", f->name ? f->name : "");
	int rc = -1;

	if (!vi || !io || !gname) {
		bnf_error("%s: out of memory", run->path);
		goto out;
	}
	/* A graph that borrows the body's nodes and names; its inputs and
	 * outputs carry only names. */
	for (size_t i = 0; i < n_io; i++) {
		onnx__value_info_proto__init(&vi[i]);
		vi[i].name = i < f->n_input ? f->input[i] : f->output[i - f->n_input];
		io[i] = &vi[i];
	}
	onnx__graph_proto__init(&g);
	g.name = f->name;
	g.n_node = f->n_node;
	g.node = f->node;
	g.n_input = f->n_input;
	g.input = io;
	g.n_output = f->n_output;
	g.output = io + f->n_input;
	if (bnf_graph_collect_names(&run->names, &g) < 0) {
		bnf_error("%s: out of memory", run->path);
		goto out;
	}
	rc = fold_graph(run, &g, gname, NULL, default_opset(f->opset_import, f->n_opset_import, model_opset), true);
	f->n_node = g.n_node; /* folded nodes were removed from the same array */
out:
	free(vi);
	free(io);
	free(gname);
	return rc;
}

int bnf_fold_model(Onnx__ModelProto *m, const char *path, const bnf_fold_options *opt,
		   bnf_result *res)
{
	int opset = -1, rc;
	frun run;

	memset(res, 0, sizeof(*res));
	memset(&run, 0, sizeof(run));
	opset = default_opset(m->opset_import, m->n_opset_import, -1);
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
	res->nodes_before = count_model_nodes(m);
	run.path = path;
	run.ir = (int)res->ir_version;
	run.opt = opt;
	run.res = res;
	run.model = m;
	rc = bnf_graph_collect_names(&run.names, m->graph);
	for (size_t i = 0; rc == 0 && i < m->n_training_info; i++) {
		const Onnx__TrainingInfoProto *t = m->training_info[i];
		if ((t->initialization && bnf_graph_collect_names(&run.names, t->initialization) < 0) ||
		    (t->algorithm && bnf_graph_collect_names(&run.names, t->algorithm) < 0))
			rc = -1;
	}
	if (rc < 0) {
		bnf_graph_free(&run.names);
		return bnf_error("%s: out of memory", path);
	}
	rc = fold_graph(&run, m->graph, m->graph->name && m->graph->name[0] ? m->graph->name : "main", NULL, opset,
			false);
	for (size_t i = 0; rc == 0 && i < m->n_functions; i++)
		rc = fold_function(&run, m->functions[i], opset);
	bnf_graph_free(&run.names);
	if (rc < 0)
		return -1;
	res->nodes_after = count_model_nodes(m);
	return 0;
}

size_t bnf_result_bn_folded(const bnf_result *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_fusions; i++)
		n += r->fusions[i].is_bn;
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

int bnf_result_verify_finish(bnf_result *r)
{
	int rc = bnf_verify_batch_finish(r->pending, put_check, r);
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
