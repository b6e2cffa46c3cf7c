/* The cap on new weight tensors (bnf_fold_options.max_new_bytes), on a
 * model small enough to build here: one 1024-byte weight W read by three
 * Conv -> BatchNormalization pairs.  Folding the first two pairs writes a
 * copy of W each; the third Conv is then W's only reader and is edited in
 * place.  Expected counts follow from that by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "driver.h"
#include "model_read.h"
#include "tap.h"

#define N_PAIRS 3

static Onnx__TensorProto *tensor(const char *name, int64_t *dims, size_t rank, float *data, size_t n)
{
	Onnx__TensorProto *t = calloc(1, sizeof(*t));
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_dims = rank;
	t->dims = dims;
	t->n_float_data = n;
	t->float_data = data;
	return t;
}

static Onnx__NodeProto *node(const char *op, const char *name, char **in, size_t n_in, char **out)
{
	Onnx__NodeProto *nd = calloc(1, sizeof(*nd));
	onnx__node_proto__init(nd);
	nd->op_type = (char *)op;
	nd->name = (char *)name;
	nd->n_input = n_in;
	nd->input = in;
	nd->n_output = 1;
	nd->output = out;
	return nd;
}

/* The model as bytes (built from stack and static parts, then packed). */
static uint8_t *model_bytes(size_t *len)
{
	static float w[256], ones[4] = {1, 1, 1, 1};
	static int64_t wdims[4] = {4, 64, 1, 1}, pdims[1] = {4};
	static char *conv_in[N_PAIRS][2], *bn_in[N_PAIRS][5], *conv_out[N_PAIRS][1], *bn_out[N_PAIRS][1];
	static char names[N_PAIRS][4][16];
	static const char *params[4] = {"s", "b", "m", "v"};
	Onnx__TensorProto *inits[5];
	Onnx__NodeProto *nodes[2 * N_PAIRS];
	Onnx__ValueInfoProto x, ys[N_PAIRS], *inputs[1] = {&x}, *outputs[N_PAIRS];
	Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
	Onnx__GraphProto g;
	Onnx__ModelProto m;
	uint8_t *buf;

	for (size_t i = 0; i < 256; i++)
		w[i] = (float)(i % 7) * 0.25f;
	inits[0] = tensor("W", wdims, 4, w, 256);
	for (int k = 0; k < 4; k++)
		inits[k + 1] = tensor(params[k], pdims, 1, ones, 4);
	for (int i = 0; i < N_PAIRS; i++) {
		snprintf(names[i][0], 16, "c%d", i);
		snprintf(names[i][1], 16, "y%d", i);
		snprintf(names[i][2], 16, "conv%d", i);
		snprintf(names[i][3], 16, "bn%d", i);
		conv_in[i][0] = "x";
		conv_in[i][1] = "W";
		conv_out[i][0] = names[i][0];
		bn_in[i][0] = names[i][0];
		for (int k = 0; k < 4; k++)
			bn_in[i][k + 1] = (char *)params[k];
		bn_out[i][0] = names[i][1];
		nodes[2 * i] = node("Conv", names[i][2], conv_in[i], 2, conv_out[i]);
		nodes[2 * i + 1] = node("BatchNormalization", names[i][3], bn_in[i], 5, bn_out[i]);
		onnx__value_info_proto__init(&ys[i]);
		ys[i].name = names[i][1];
		outputs[i] = &ys[i];
	}
	onnx__value_info_proto__init(&x);
	x.name = "x";
	onnx__graph_proto__init(&g);
	g.name = "g";
	g.n_node = 2 * N_PAIRS;
	g.node = nodes;
	g.n_initializer = 5;
	g.initializer = inits;
	g.n_input = 1;
	g.input = inputs;
	g.n_output = N_PAIRS;
	g.output = outputs;
	onnx__operator_set_id_proto__init(&opset);
	opset.has_version = 1;
	opset.version = 13;
	onnx__model_proto__init(&m);
	m.has_ir_version = 1;
	m.ir_version = 8;
	m.graph = &g;
	m.n_opset_import = 1;
	m.opset_import = opsets;
	*len = onnx__model_proto__get_packed_size(&m);
	buf = malloc(*len);
	onnx__model_proto__pack(&m, buf);
	for (int i = 0; i < 5; i++)
		free(inits[i]);
	for (int i = 0; i < 2 * N_PAIRS; i++)
		free(nodes[i]);
	return buf;
}

static void fold_with(size_t max_new_bytes, const uint8_t *bytes, size_t len, size_t want_folded,
		      size_t want_new_bytes)
{
	bnf_fold_options opt = {.max_new_bytes = max_new_bytes};
	bnf_result res;
	Onnx__ModelProto *m = bnf_model_parse("limits", bytes, len, NULL);
	size_t too_large = 0;

	OK(m != NULL, "the model parses");
	if (!m)
		return;
	OK(bnf_fold_model(m, "limits", &opt, &res, NULL) == 0, "cap %zu: folding runs", max_new_bytes);
	for (size_t i = 0; i < res.n_skips; i++)
		too_large += res.skips[i].reason == BNF_WEIGHT_TOO_LARGE;
	OK(res.n_fusions == want_folded && too_large == N_PAIRS - want_folded,
	   "cap %zu: %zu folded, %zu weight_too_large (got %zu, %zu)", max_new_bytes, want_folded,
	   N_PAIRS - want_folded, res.n_fusions, too_large);
	OK(res.new_bytes == want_new_bytes, "cap %zu: %zu bytes of new weights (got %zu)", max_new_bytes,
	   want_new_bytes, res.new_bytes);
	bnf_result_free(&res);
	onnx__model_proto__free_unpacked(m, NULL);
}

int main(void)
{
	size_t len;
	uint8_t *bytes = model_bytes(&len);

	/* W is 4 x 64 float32 = 1024 bytes. */
	fold_with(2048, bytes, len, 3, 2048); /* two copies, then the last reader edits W itself */
	fold_with(2047, bytes, len, 1, 1024); /* one copy; the other two Convs still share W */
	fold_with(1023, bytes, len, 0, 0);    /* not even one copy */
	fold_with(0, bytes, len, 3, 2048);    /* 0: the default cap, 256 MiB */
	free(bytes);
	return tap_done();
}
