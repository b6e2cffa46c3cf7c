/* Test program: the shapes bnfold infers for a model, as JSON lines, for
 * tests/shapes/test_shapes.py to compare with onnx's shape inference.
 *
 *     dump_shapes MODEL.onnx      one line per value of the main graph whose
 *                                 rank is known or whose declaration conflicts:
 *                                 {"name", "rank", "dims": [int|string|null],
 *                                  "elem_type", "conflict"}
 *     dump_shapes --covers OP...  the OPs (default domain) shape inference has
 *                                 a rule for, one a line
 *
 * Exit 0, or 1 with the library's error on stderr. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "model_read.h"
#include "shapes.h"
#include "shapes_internal.h"

/* The default-domain opset a model imports, 1 when none. */
static int model_opset(const Onnx__ModelProto *m)
{
	int opset = 1;
	for (size_t i = 0; i < m->n_opset_import; i++) {
		const char *d = m->opset_import[i]->domain;
		if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && m->opset_import[i]->has_version)
			opset = (int)m->opset_import[i]->version;
	}
	return opset;
}

/* One JSON line for name's shape s. */
static int print_shape(const char *name, const bnf_shape *s)
{
	cJSON *o = cJSON_CreateObject(), *dims = cJSON_CreateArray();
	char *text;
	int rc = -1;

	if (!o || !dims)
		goto out;
	cJSON_AddItemToObject(o, "dims", dims);
	for (int d = 0; d < s->rank; d++) {
		const bnf_dim *dim = &s->dims[d];
		cJSON_AddItemToArray(dims, dim->value >= 0   ? cJSON_CreateNumber((double)dim->value)
					   : dim->param ? cJSON_CreateString(dim->param)
							: cJSON_CreateNull());
	}
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddNumberToObject(o, "rank", s->rank);
	cJSON_AddNumberToObject(o, "elem_type", s->elem_type);
	cJSON_AddBoolToObject(o, "conflict", s->conflict);
	if ((text = cJSON_PrintUnformatted(o))) {
		puts(text);
		free(text);
		rc = 0;
	}
out:
	cJSON_Delete(o);
	if (!o)
		cJSON_Delete(dims);
	return rc;
}

static int dump(const char *path)
{
	bnf_err err = {0};
	bnf_input in;
	bnf_graph gi;
	int rc = 1;

	memset(&gi, 0, sizeof(gi));
	if (bnf_input_open(path, &in, false, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (!in.model->graph) {
		fprintf(stderr, "%s: no graph\n", path);
		goto out;
	}
	if (bnf_graph_build(&gi, in.model->graph, NULL, path, in.model->has_ir_version ? (int)in.model->ir_version : 0,
			    model_opset(in.model), false, &err) < 0)
		goto fail;
	gi.payloads = &in.payloads;
	if (bnf_shapes_infer(&gi) < 0)
		goto fail;
	for (size_t i = 0; i < gi.cap; i++) {
		const bnf_value *v = &gi.slots[i];
		bnf_shape s;
		if (!v->name)
			continue;
		if ((bnf_graph_shape(&gi, v->name, &s) || (v->shape >= 0 && gi.shapes[v->shape].conflict)) &&
		    print_shape(v->name, v->shape >= 0 ? &gi.shapes[v->shape] : &s) < 0)
			goto out;
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "%s\n", err.msg);
out:
	bnf_graph_free(&gi);
	bnf_input_close(&in);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--covers") == 0) {
		for (int i = 2; i < argc; i++)
			if (bnf_shapes_covers(argv[i]))
				puts(argv[i]);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: dump_shapes MODEL.onnx | dump_shapes --covers OP...\n");
		return 2;
	}
	return dump(argv[1]);
}
