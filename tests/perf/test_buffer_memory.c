/* The buffer API in bounded memory: a model of about 100 MB built here in
 * memory (24 Conv layers of 4 MiB weights, half of them followed by a
 * BatchNormalization) goes through bnfold_inspect_buffer and
 * bnfold_fold_buffer, and the process's peak RSS may pass what it held
 * before by at most the input, the output and 32 MiB.  A library that
 * unpacked the whole model (a copy of every weight) would pass it by
 * about the model's size again.  The output is checked too: every BN
 * folded, and the same bytes as folding with every weight in memory
 * (stream off), which is measured last, being the larger.
 *   test_buffer_memory */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bnfold.h"
#include "onnx.pb-c.h"
#include "tap.h"

#define LAYERS 24
#define CH 1024                                  /* channels: a weight is CH x CH x 1 x 1 floats, 4 MiB */
#define SLACK_MIB 32.0

/* The process's peak resident set so far, in MiB. */
static double peak_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static Onnx__TensorProto *tensor(const char *name, int64_t *dims, size_t rank, const float *data, size_t n)
{
	Onnx__TensorProto *t = calloc(1, sizeof(*t));
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_dims = rank;
	t->dims = dims;
	t->has_raw_data = 1;
	t->raw_data.data = (uint8_t *)data; /* shared between tensors: packing copies it */
	t->raw_data.len = n * sizeof(float);
	return t;
}

static Onnx__NodeProto *node(const char *op, char **in, size_t n_in, char **out)
{
	Onnx__NodeProto *nd = calloc(1, sizeof(*nd));
	onnx__node_proto__init(nd);
	nd->op_type = (char *)op;
	nd->name = out[0];
	nd->n_input = n_in;
	nd->input = in;
	nd->n_output = 1;
	nd->output = out;
	return nd;
}

static Onnx__ValueInfoProto *value(char *name)
{
	Onnx__ValueInfoProto *v = calloc(1, sizeof(*v));
	onnx__value_info_proto__init(v);
	v->name = name;
	return v;
}

/* The graph of nodes and initializers, from x0 to out, as a model packed
 * into one new buffer of *len bytes (NULL when memory runs out). */
static uint8_t *pack(Onnx__NodeProto **nodes, size_t n_node, Onnx__TensorProto **inits, size_t n_init, char *x0,
		     char *out, size_t *len)
{
	Onnx__ValueInfoProto *in_vi = value(x0), *out_vi = value(out);
	Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
	Onnx__GraphProto g;
	Onnx__ModelProto m;
	uint8_t *buf;

	onnx__operator_set_id_proto__init(&opset);
	opset.has_version = 1;
	opset.version = 13;
	onnx__graph_proto__init(&g);
	g.name = "big";
	g.n_node = n_node;
	g.node = nodes;
	g.n_initializer = n_init;
	g.initializer = inits;
	g.n_input = 1;
	g.input = &in_vi;
	g.n_output = 1;
	g.output = &out_vi;
	onnx__model_proto__init(&m);
	m.has_ir_version = 1;
	m.ir_version = 8;
	m.n_opset_import = 1;
	m.opset_import = opsets;
	m.graph = &g;
	*len = onnx__model_proto__get_packed_size(&m);
	if ((buf = malloc(*len)))
		onnx__model_proto__pack(&m, buf);
	free(in_vi);
	free(out_vi);
	return buf;
}

/* The model, packed into one buffer of *len bytes: x0 -> Conv -> [BN] ->
 * x1 -> ... -> x24.  Every weight holds the same values (one array,
 * shared), each BN the same parameters. */
static uint8_t *model_bytes(size_t *len)
{
	static char names[LAYERS + 1][3][24], pnames[LAYERS][4][24], *conv_in[LAYERS][2], *bn_in[LAYERS][5],
		*conv_out[LAYERS][1], *bn_out[LAYERS][1];
	static int64_t wdims[4] = {CH, CH, 1, 1}, pdims[1] = {CH};
	static const char *pname[4] = {"scale", "bias", "mean", "var"};
	float *w = malloc((size_t)CH * CH * sizeof(float)), *p[4];
	Onnx__TensorProto *inits[LAYERS * 5];
	Onnx__NodeProto *nodes[LAYERS * 2];
	size_t n_init = 0, n_node = 0;
	uint8_t *buf;

	for (int k = 0; k < 4; k++)
		p[k] = malloc(CH * sizeof(float));
	if (!w || !p[0] || !p[1] || !p[2] || !p[3]) {
		free(w);
		for (int k = 0; k < 4; k++)
			free(p[k]);
		return NULL;
	}
	for (size_t i = 0; i < (size_t)CH * CH; i++)
		w[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;
	for (int k = 0; k < 4; k++) {
		for (size_t c = 0; c < CH; c++)
			p[k][c] = k == 0 ? 1.5f + (float)c * 1e-3f : k == 3 ? 1.0f + (float)c * 1e-4f : 0.1f;
	}
	for (int l = 0; l <= LAYERS; l++)
		snprintf(names[l][0], sizeof(names[l][0]), "x%d", l);
	for (int l = 0; l < LAYERS; l++) {
		bool bn = l % 2 == 0;
		snprintf(names[l][1], sizeof(names[l][1]), "w%d", l);
		snprintf(names[l][2], sizeof(names[l][2]), "conv%d", l);
		conv_in[l][0] = names[l][0];
		conv_in[l][1] = names[l][1];
		conv_out[l][0] = bn ? names[l][2] : names[l + 1][0];
		inits[n_init++] = tensor(names[l][1], wdims, 4, w, (size_t)CH * CH);
		nodes[n_node++] = node("Conv", conv_in[l], 2, conv_out[l]);
		if (!bn)
			continue;
		bn_in[l][0] = names[l][2];
		for (int k = 0; k < 4; k++) {
			snprintf(pnames[l][k], sizeof(pnames[l][k]), "%s%d", pname[k], l);
			bn_in[l][k + 1] = pnames[l][k];
			inits[n_init++] = tensor(pnames[l][k], pdims, 1, p[k], CH);
		}
		bn_out[l][0] = names[l + 1][0];
		nodes[n_node++] = node("BatchNormalization", bn_in[l], 5, bn_out[l]);
	}
	buf = pack(nodes, n_node, inits, n_init, names[0][0], names[LAYERS][0], len);
	for (size_t i = 0; i < n_init; i++)
		free(inits[i]);
	for (size_t i = 0; i < n_node; i++)
		free(nodes[i]);
	for (int k = 0; k < 4; k++)
		free(p[k]);
	free(w);
	return buf;
}

int main(void)
{
	double before = peak_mib(), peak, in_mib, out_mib;
	size_t len, out_len = 0, simple_len = 0;
	uint8_t *model = model_bytes(&len);
	void *out = NULL, *simple = NULL;
	bnfold_result *r = NULL;
	bnfold_counts c;
	bnfold_options o;
	bnfold_status st;

	if (!model) {
		OK(0, "building the model");
		return tap_done();
	}
	in_mib = (double)len / (1 << 20);
	OK(len >= (size_t)96 << 20, "the model built is %.1f MiB", in_mib);
	bnfold_options_init(&o);

	st = bnfold_inspect_buffer(model, len, "big", &o, &r, NULL);
	peak = peak_mib();
	bnfold_result_counts(r, &c);
	OK(st == BNFOLD_OK && c.bn_found == LAYERS / 2 && c.bn_folded == LAYERS / 2, "inspect_buffer: %zu of %zu BN fold",
	   c.bn_folded, c.bn_found);
	OK(peak - before <= in_mib + SLACK_MIB, "inspect_buffer: peak RSS %.1f MiB over the start <= input %.1f + %.0f MiB",
	   peak - before, in_mib, SLACK_MIB);
	bnfold_result_free(r);

	st = bnfold_fold_buffer(model, len, "big", &out, &out_len, &o, &r, NULL);
	peak = peak_mib();
	out_mib = (double)out_len / (1 << 20);
	bnfold_result_counts(r, &c);
	OK(st == BNFOLD_OK && c.bn_folded == LAYERS / 2 && c.verified == LAYERS / 2 && c.verify_failed == 0,
	   "fold_buffer: %zu BN folded, %zu checked", c.bn_folded, c.verified);
	OK(peak - before <= in_mib + out_mib + SLACK_MIB,
	   "fold_buffer: peak RSS %.1f MiB over the start <= input %.1f + output %.1f + %.0f MiB", peak - before, in_mib,
	   out_mib, SLACK_MIB);
	bnfold_result_free(r);

	/* The same bytes with every weight in memory, measured last: holding
	 * the streamed output, it takes a second output and a copy of every
	 * weight, so the peak passes in + 2 outputs + the slack (the
	 * measurement does see a model-sized copy). */
	o.stream = false;
	st = bnfold_fold_buffer(model, len, "big", &simple, &simple_len, &o, NULL, NULL);
	OK(st == BNFOLD_OK && out && simple_len == out_len && memcmp(simple, out, out_len) == 0,
	   "fold_buffer streamed and with every weight in memory: the same %zu bytes", out_len);
	OK(peak_mib() - before > in_mib + 2 * out_mib + SLACK_MIB,
	   "with every weight in memory the peak is %.1f MiB over the start, > input + 2 outputs + %.0f MiB",
	   peak_mib() - before, SLACK_MIB);
	bnfold_free(simple);
	bnfold_free(out);
	free(model);
	return tap_done();
}
