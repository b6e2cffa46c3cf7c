/* shapes.c: the text form of shapes, and inference over a graph built by
 * hand (declarations merged, a conflict marked, a named dim kept). */
#include <string.h>

#include "shapes.h"
#include "tap.h"

static bnf_shape shape_of(int rank, const int64_t *v, const char *const *param)
{
	bnf_shape s = {.rank = rank};
	for (int i = 0; i < rank; i++) {
		s.dims[i].value = v[i];
		s.dims[i].param = param ? param[i] : NULL;
	}
	return s;
}

static void test_format(void)
{
	char buf[64], small[6];
	int64_t v[] = {1, 64, -1, -1};
	const char *names[] = {NULL, NULL, "N", NULL};
	bnf_shape s = shape_of(4, v, names), scalar = {.rank = 0}, unknown = bnf_shape_unknown();

	OK(strcmp(bnf_shape_format(&s, buf, sizeof(buf)), "[1,64,N,?]") == 0, "format [1,64,N,?]: %s", buf);
	OK(strcmp(bnf_shape_format(&scalar, buf, sizeof(buf)), "[]") == 0, "format a scalar: %s", buf);
	OK(strcmp(bnf_shape_format(&unknown, buf, sizeof(buf)), "?") == 0, "format an unknown rank: %s", buf);
	OK(strcmp(bnf_shape_format(&s, small, sizeof(small)), "[1,64") == 0, "format truncated to the buffer: %s",
	   small);
	OK(bnf_shape_format(&s, buf, 0) == buf, "format into no room returns the buffer");
}

/* x [N, 3] -> Relu -> r, declared [N, 4]: a conflict; and x -> Sigmoid -> s,
 * declared [N, ?]: merged into [N, 3]. */
static void test_infer(void)
{
	Onnx__GraphProto g;
	Onnx__NodeProto relu, sig, *nodes[2] = {&relu, &sig};
	Onnx__ValueInfoProto vx, vr, vs, *inputs[1] = {&vx}, *infos[2] = {&vr, &vs};
	Onnx__TypeProto tx, tr, ts;
	Onnx__TypeProto__Tensor ttx, ttr, tts;
	Onnx__TensorShapeProto shx, shr, shs;
	Onnx__TensorShapeProto__Dimension dn, d3, d4, dq, *dx[2] = {&dn, &d3}, *dr[2] = {&dn, &d4}, *ds[2] = {&dn, &dq};
	char *in_x[1] = {"x"}, *out_r[1] = {"r"}, *out_s[1] = {"s"};
	bnf_graph gi;
	bnf_shape got;
	char buf[64];

	onnx__graph_proto__init(&g);
	onnx__node_proto__init(&relu);
	onnx__node_proto__init(&sig);
	relu.op_type = "Relu", relu.n_input = 1, relu.input = in_x, relu.n_output = 1, relu.output = out_r;
	sig.op_type = "Sigmoid", sig.n_input = 1, sig.input = in_x, sig.n_output = 1, sig.output = out_s;
	onnx__tensor_shape_proto__dimension__init(&dn);
	onnx__tensor_shape_proto__dimension__init(&d3);
	onnx__tensor_shape_proto__dimension__init(&d4);
	onnx__tensor_shape_proto__dimension__init(&dq);
	dn.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, dn.dim_param = "N";
	d3.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d3.dim_value = 3;
	d4.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d4.dim_value = 4;
	Onnx__ValueInfoProto *vis[3] = {&vx, &vr, &vs};
	Onnx__TypeProto *tps[3] = {&tx, &tr, &ts};
	Onnx__TypeProto__Tensor *tts_[3] = {&ttx, &ttr, &tts};
	Onnx__TensorShapeProto *shs_[3] = {&shx, &shr, &shs};
	Onnx__TensorShapeProto__Dimension **dims[3] = {dx, dr, ds};
	const char *names[3] = {"x", "r", "s"};
	for (int i = 0; i < 3; i++) {
		onnx__value_info_proto__init(vis[i]);
		onnx__type_proto__init(tps[i]);
		onnx__type_proto__tensor__init(tts_[i]);
		onnx__tensor_shape_proto__init(shs_[i]);
		shs_[i]->n_dim = 2, shs_[i]->dim = dims[i];
		tts_[i]->has_elem_type = 1, tts_[i]->elem_type = 1, tts_[i]->shape = shs_[i];
		tps[i]->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tps[i]->tensor_type = tts_[i];
		vis[i]->name = (char *)names[i], vis[i]->type = tps[i];
	}
	g.n_node = 2, g.node = nodes;
	g.n_input = 1, g.input = inputs;
	g.n_value_info = 2, g.value_info = infos;
	memset(&gi, 0, sizeof(gi));
	if (bnf_graph_build(&gi, &g, NULL, "test", 8, 13, false, NULL) < 0 || bnf_shapes_infer(&gi) < 0) {
		OK(0, "index and infer a hand-made graph");
		return;
	}
	OK(bnf_graph_shape(&gi, "x", &got) && strcmp(bnf_shape_format(&got, buf, sizeof(buf)), "[N,3]") == 0,
	   "graph input as declared: %s", buf);
	OK(!bnf_graph_shape(&gi, "r", &got) && got.conflict, "declared [N,4] against inferred [N,3]: a conflict");
	OK(bnf_graph_shape(&gi, "s", &got) && strcmp(bnf_shape_format(&got, buf, sizeof(buf)), "[N,3]") == 0 &&
		   got.elem_type == 1,
	   "declared [N,?] merged with inferred [N,3]: %s", buf);
	bnf_graph_free(&gi);
}

int main(void)
{
	test_format();
	test_infer();
	return tap_done();
}
