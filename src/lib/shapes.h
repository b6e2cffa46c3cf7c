/* Shape inference: the static shape of every value of an indexed graph,
 * wherever ONNX's own inference rules determine it from the model's
 * declarations, its constants and the ops it knows; unknown otherwise,
 * never a guess.  The shapes go into the index's table (graph.h:
 * bnf_graph_shape reads them).  Reads only the graph's metadata and the
 * small integer constants that shapes are made of (constants.h). */
#ifndef BNF_SHAPES_H
#define BNF_SHAPES_H

#include <stddef.h>

#include "graph.h"

/* Infer and record the shape of every value gi's graph defines: graph
 * inputs and initializers as declared, then node outputs in gi->order,
 * each merged with what the model declares for it (value_info, graph
 * outputs).  Dims the model names (dim_param) stay named.  A declared
 * shape that contradicts the inferred one is recorded as unknown with
 * `conflict` set.  The enclosing graph's shapes must be inferred first.
 * 0, or -1 after recording in gi->fail that memory ran out. */
int bnf_shapes_infer(bnf_graph *gi);

/* s as text, "[1,64,N,?]" ("?" unknown, a dim_param by its name), or "?"
 * when the rank is unknown; truncated to len.  Returns buf. */
const char *bnf_shape_format(const bnf_shape *s, char *buf, size_t len);

#endif
