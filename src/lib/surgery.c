#include "surgery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "transform.h"
#include "constants.h"

#define BNF_EDIT_CHUNK 4096 /* elements transformed per step */

/* Room for one more pointer in an array that came from protobuf-c with
 * exactly n elements: *room is its capacity, 0 until first grown here. */
static int grow_protobuf_array(void *arrp, size_t n, size_t *room)
{
	return bnf_grow(arrp, sizeof(void *), n, room);
}

/* Free payload memory, unless it is borrowed (see payload.h). */
static void free_payload(const bnf_edit *c, void *p)
{
	if (!bnf_payloads_borrowed(c->pl, p))
		free(p);
}

/* Free a message through the payload-aware allocator. */
static void free_message(const bnf_edit *c, ProtobufCMessage *m)
{
	protobuf_c_message_free_unpacked(m, c->pl ? &c->pl->allocator : NULL);
}
/* A name used nowhere in the model (see bnf_fold_run.names): base + suffix, then
 * base + suffix + "_2", ...; it is taken from then on. */
static char *unique_name(const bnf_edit *c, const char *base, const char *suffix)
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
static int release(bnf_edit *c, const char *name)
{
	bnf_value *v = bnf_graph_value(&c->gi, name);

	if (v)
		v->n_consumers--;
	if (bnf_strlist_add(&c->released, name) < 0)
		return -1;
	if (v && defined_here(v))
		return 0;
	for (bnf_edit *p = c->parent; p; p = p->parent) {
		if (!(v = bnf_graph_value(&p->gi, name)))
			continue;
		v->n_consumers--;
		if (defined_here(v))
			return bnf_strlist_add(&p->released, name);
	}
	return 0;
}

/* Replace the tensor's data with raw bytes (owned), dropping typed fields. */
static void set_raw(const bnf_edit *c, Onnx__TensorProto *t, uint8_t *data, size_t len)
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
static int add_initializer(bnf_edit *c, char *name, int dtype, size_t rank, const int64_t *dims,
			   uint8_t *data, size_t len)
{
	Onnx__GraphProto *g = c->g;
	Onnx__TensorProto *t = malloc(sizeof(*t));
	int64_t *d = malloc((rank ? rank : 1) * sizeof(*d));
	bnf_value *v;

	if (!t || !d || !name)
		goto fail;
	if (grow_protobuf_array(&g->initializer, g->n_initializer, &c->init_room) < 0)
		goto fail;
	if (g->n_initializer + 1 > c->init_cap) {
		size_t cap = c->init_cap;
		if (BNF_GROW(c->init_removed, g->n_initializer + 1, cap) < 0)
			goto fail;
		memset(c->init_removed + c->init_cap, 0, (cap - c->init_cap) * sizeof(*c->init_removed));
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
	g->initializer[g->n_initializer++] = t; /* owned by the graph from here on */
	if (!(v = bnf_graph_value_add(&c->gi, name)))
		return -1;
	v->init = (int)g->n_initializer - 1;
	if (c->gi.ir_version < 4) {
		Onnx__ValueInfoProto *vi = tensor_value_info(name, dtype, rank, dims);
		if (!vi)
			return -1;
		if (grow_protobuf_array(&g->input, g->n_input, &c->input_room) < 0) {
			free_message(c, &vi->base);
			return -1;
		}
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
static int rewire_input(bnf_edit *c, Onnx__NodeProto *node, size_t slot, const char *name)
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
			if (!(node->input[node->n_input++] = bnf_strdup(""))) {
				node->n_input--;
				free(copy);
				return -1;
			}
		node->input[node->n_input++] = copy;
	} else {
		const char *old = node->input[slot];
		if (old[0] && release(c, old) < 0) {
			free(copy);
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
 * layer must read, or NULL when the old name stays.  Takes ownership of
 * data, also on failure. */
static int write_tensor(bnf_edit *c, const bnf_const *src, const char *base, const char *suffix,
			int dtype, size_t rank, const int64_t *dims, uint8_t *data, size_t len,
			char **new_name)
{
	*new_name = NULL;
	if (src && src->tensor && src->exclusive) {
		set_raw(c, src->tensor, data, len);
		/* A folded initializer that callers could override is a constant now. */
		if (src->is_graph_input && c->gi.ir_version >= 4 && bnf_strlist_add(&c->drop_inputs, src->tensor->name) < 0)
			return -1;
		return 0;
	}
	if (!(*new_name = unique_name(c, base, suffix))) {
		free_payload(c, data);
		return -1;
	}
	return add_initializer(c, bnf_strdup(*new_name), dtype, rank, dims, data, len);
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

/* A fold that needs a new tensor where none can be declared: a subgraph
 * of an IR < 4 model, or a function body.  True after recording why in p. */
static bool no_room_for_tensors(const bnf_edit *c, bnf_plan *p, bool weight_inplace)
{
	if (c->in_function)
		snprintf(p->message, sizeof(p->message),
			 "folding here needs a new %s tensor, and a function body has no initializers",
			 p->scale_weight && !weight_inplace ? "weight" : "bias");
	else if (c->is_subgraph && c->gi.ir_version < 4)
		snprintf(p->message, sizeof(p->message),
			 "folding here needs a new initializer inside a subgraph, which IR %d cannot declare",
			 c->gi.ir_version);
	else
		return false;
	p->reason = BNF_UNSUPPORTED_STORAGE;
	return true;
}

/* The folded weight: computed now, or (not in memory: always for external
 * data, so that it stays external in the output) chunk by chunk when the
 * model is written.  The layer reads it under its old name or a new one.
 * *wbytes is its size.  0, or -1 (a failure of the payloads recorded in
 * c->run->fail; otherwise memory ran out, not recorded). */
static int write_weight(bnf_edit *c, const bnf_plan *p, Onnx__NodeProto *layer, size_t *wbytes)
{
	const bnf_tview *w = &p->weight.view;
	size_t es = bnf_dtype_size(p->dtype);
	uint8_t *wdata;
	char *wname = NULL;
	int rc;

	if (!bnf_mul_size(w->numel, es, wbytes))
		return -1;
	if (c->pl && ((w->src && w->src->external) || (!c->pl->materialize && (w->src || w->lazy || w->uniform)))) {
		if (!(wdata = bnf_payloads_add(c->pl, w, &p->transform, *wbytes)))
			return -1; /* recorded by the registry */
	} else {
		double *scratch = malloc(BNF_EDIT_CHUNK * sizeof(double));
		bnf_window win = BNF_WINDOW_INIT; /* this computation's own */
		if (!scratch || !(wdata = malloc(*wbytes ? *wbytes : 1))) {
			free(scratch);
			return -1;
		}
		for (size_t done = 0; done < w->numel; done += BNF_EDIT_CHUNK) {
			size_t n = w->numel - done < BNF_EDIT_CHUNK ? w->numel - done : BNF_EDIT_CHUNK;
			if (!bnf_transform_apply(&p->transform, w, done, n, &win, scratch, wdata + done * es))
				c->res->unscanned_nonfinite = true;
		}
		bnf_window_drop(&win);
		free(scratch);
	}
	/* write_tensor owns wdata, whatever the outcome */
	rc = write_tensor(c, &p->weight, layer->input[1], "_bnfold", p->dtype, w->rank, w->dims, wdata, *wbytes, &wname);
	if (rc == 0 && wname)
		rc = rewire_input(c, layer, 1, wname);
	free(wname);
	return rc;
}

/* The folded bias, in place when only this layer reads a bias of the
 * right shape, else a new initializer the layer reads.  0, or -1 when
 * memory runs out. */
static int write_bias(bnf_edit *c, const bnf_plan *p, Onnx__NodeProto *layer, const Onnx__NodeProto *node,
		      bool bias_inplace)
{
	size_t es = bnf_dtype_size(p->dtype);
	const bnf_const *old = p->has_bias && bias_inplace ? &p->bias : NULL;
	int64_t bdim = (int64_t)p->bias_len;
	uint8_t *bdata = malloc(p->bias_len * es + 1);
	char *bname = NULL;
	int rc;

	if (!bdata)
		return -1;
	for (size_t ch = 0; ch < p->bias_len; ch++)
		bnf_encode(p->dtype, p->new_bias[ch], bdata + ch * es);
	rc = write_tensor(c, old, p->has_bias ? layer->input[2] : node->output[0], p->has_bias ? "_bnfold" : "_bnfold_bias",
			  p->dtype, 1, &bdim, bdata, p->bias_len * es, &bname);
	if (rc == 0 && bname)
		rc = rewire_input(c, layer, 2, bname);
	free(bname);
	return rc;
}

/* The layer (or the last Transpose/Identity after it) takes over the
 * node's output name; the node's other inputs lose a reader. */
static int take_output(bnf_edit *c, const bnf_plan *p, Onnx__NodeProto *layer, Onnx__NodeProto *node)
{
	Onnx__NodeProto *tail = p->tail_node >= 0 ? c->g->node[p->tail_node] : layer;
	char *out_copy;
	bnf_value *v;

	for (size_t i = 0; i < node->n_input; i++) {
		if (strcmp(node->input[i], tail->output[0]) == 0 || !node->input[i][0])
			continue;
		if (release(c, node->input[i]) < 0)
			return -1;
	}
	if (!(out_copy = bnf_strdup(node->output[0])))
		return -1;
	if (bnf_strlist_add(&c->killed, tail->output[0]) < 0) {
		free(out_copy);
		return -1;
	}
	if ((v = bnf_graph_value(&c->gi, tail->output[0]))) {
		v->producer = -1;
		v->n_consumers = 0;
	}
	free(tail->output[0]);
	tail->output[0] = out_copy;
	if ((v = bnf_graph_value(&c->gi, node->output[0]))) {
		v->producer = p->tail_node >= 0 ? p->tail_node : p->layer_node;
		v->producer_slot = 0;
	}
	return 0;
}

/* The layer reads what the BN read; the BN's parameters lose a reader. */
static int take_input(bnf_edit *c, Onnx__NodeProto *layer, Onnx__NodeProto *node)
{
	char *in_copy = bnf_strdup(node->input[0]);
	bnf_value *v;

	if (!in_copy)
		return -1;
	if (bnf_strlist_add(&c->killed, node->output[0]) < 0) {
		free(in_copy);
		return -1;
	}
	free(layer->input[0]);
	layer->input[0] = in_copy;
	if ((v = bnf_graph_value(&c->gi, node->output[0]))) {
		v->producer = -1;
		v->n_consumers = 0;
	}
	for (size_t i = 1; i < node->n_input; i++)
		if (release(c, node->input[i]) < 0)
			return -1;
	return 0;
}

int bnf_edit_apply(bnf_edit *c, bnf_plan *p, const bnf_verify *vr)
{
	Onnx__NodeProto *layer = c->g->node[p->layer_node];
	Onnx__NodeProto *node = c->g->node[p->node];
	size_t wbytes = 0;
	bool weight_inplace = !p->scale_weight || (p->weight.tensor && p->weight.exclusive);
	bool bias_inplace = p->has_bias && p->bias.tensor && p->bias.exclusive && p->bias.view.rank == 1 &&
			    p->bias.view.numel == p->bias_len;
	bool new_tensor = (p->scale_weight && !weight_inplace) || (p->write_bias && !bias_inplace);
	char *layer_op = NULL, *layer_label = NULL;

	if (new_tensor && no_room_for_tensors(c, p, weight_inplace)) {
		if (!p->reported)
			return 0;
		if (bnf_result_add_skip(c->res, c->gname, p, node, layer) < 0)
			goto oom;
		return 0;
	}
	/* the layer named as it was: it may take the BN's output name below */
	if (!(layer_op = bnf_strdup(layer->op_type)) || !(layer_label = bnf_node_label_copy(layer)))
		goto oom;
	if (p->scale_weight && write_weight(c, p, layer, &wbytes) < 0)
		goto oom;
	if (p->write_bias && write_bias(c, p, layer, node, bias_inplace) < 0)
		goto oom;
	if (p->to_gemm) {
		char *op = bnf_strdup(bnf_layer_op_type(BNF_LAYER_GEMM));
		if (!op)
			goto oom;
		free(layer->op_type);
		layer->op_type = op;
	}
	if (p->reset_gemm_beta)
		set_float_attr(layer, "beta", 1.0f);
	if (p->scale_weight && !weight_inplace) { /* the plan checked that it fits */
		c->pol.new_bytes_left -= wbytes < c->pol.new_bytes_left ? wbytes : c->pol.new_bytes_left;
		c->res->new_bytes += wbytes;
	}
	if ((p->absorb == BNF_ABSORB_OUTPUT ? take_output(c, p, layer, node) : take_input(c, layer, node)) < 0)
		goto oom;
	c->node_removed[p->node] = true;
	if (bnf_result_add_fusion(c->res, c->gname, p, node, layer, layer_op, layer_label,
				  p->scale_weight && !weight_inplace, p->write_bias && !p->has_bias, vr) < 0)
		goto oom;
	free(layer_op);
	free(layer_label);
	return 1;
oom: /* unless a step recorded its own failure first */
	bnf_fail(c->run->fail, BNFOLD_E_NOMEM, "%s: out of memory folding '%s'", c->path, node->output[0]);
	free(layer_op);
	free(layer_label);
	return -1;
}

/* The ops that compute constants for a fold (constants.c follows them,
 * const_eval.c evaluates them): once nothing reads their outputs they are
 * dead code. */
static bool removable_when_unused(const Onnx__NodeProto *node)
{
	static const char *const ops[] = {"Constant", "Identity", "ConstantOfShape", "Reshape", "Add", "Sub",
					  "Mul", "Div", "Sqrt", "Neg", "Abs", "Reciprocal", "Unsqueeze",
					  "Squeeze", "Flatten", "Expand", "Concat", "Transpose", "Cast",
					  "Slice", "Gather", "Shape", "Size"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(node, ops[i]))
			return true;
	return false;
}

/* Drop initializers and constant-producing nodes that lost their last
 * reader to a fold (never ones that were unused to begin with). */
int bnf_edit_sweep(bnf_edit *c)
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
			if (v->is_input && bnf_strlist_add(&c->drop_inputs, name) < 0)
				return -1;
			if (bnf_strlist_add(&c->killed, name) < 0)
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
			if (node->output[o][0] && bnf_strlist_add(&c->killed, node->output[o]) < 0)
				return -1;
		for (size_t i = 0; i < node->n_input; i++)
			if (node->input[i][0] && release(c, node->input[i]) < 0)
				return -1;
	}
	return 0;
}

/* Remove what was marked, freeing it. */
void bnf_edit_compact(bnf_edit *c)
{
	Onnx__GraphProto *g = c->g;
	size_t j = 0;

	bnf_strlist_sort(&c->drop_inputs);
	bnf_strlist_sort(&c->killed);
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
		if (g->input[i]->name && bnf_strlist_has(&c->drop_inputs, g->input[i]->name)) {
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
		bool gone = name && bnf_strlist_has(&c->killed, name) &&
			    (!v || (v->producer < 0 && (v->init < 0 || c->init_removed[v->init]) && !v->is_input));
		if (gone)
			free_message(c, &g->value_info[i]->base);
		else
			g->value_info[j++] = g->value_info[i];
	}
	g->n_value_info = j;
}
