/* Index of one graph: which node produces each name, how many node inputs
 * read it, which initializer holds it, whether it is a graph input or
 * output, and an order of the nodes with every producer first; the set of
 * every name in a model; helpers reading node attributes.  What the names
 * hold (constants, ranks) is constants.h. */
#ifndef BNF_GRAPH_H
#define BNF_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "onnx.pb-c.h"
#include "shape.h"

/* Default cap on the bytes of new tensors one model may get: new weight
 * tensors folding writes (copies of shared weights, weights made by
 * ConstantOfShape), and each value computed from constants, as doubles
 * (constants.h).  A few bytes of shape, or one weight shared by thousands
 * of Convs, could otherwise ask for terabytes. */
#define BNF_MAX_NEW_BYTES ((size_t)256 << 20)

typedef struct bnf_value {
	const char *name;  /* owned by the index; NULL marks an empty slot */
	int producer;      /* node index, -1 if none */
	int producer_slot; /* which output of the producer */
	int n_consumers;   /* node inputs reading it; a node whose subgraph reads it counts once */
	int init;          /* initializer index, -1 if none */
	bool is_input;
	bool is_output;
	bool trained;      /* assigned by a training_info binding: not a constant */
	unsigned copies;   /* surgery.c: the last number given to a new name made from this one */
	int shape;         /* index in the graph's table of shapes, -1 when none is recorded */
} bnf_value;

/* What the evaluator (constants.h) has spent over one run, across every
 * query of every graph it folds: the run owns it (bnf_fold_run) and each
 * graph's index points at it.  Bounds the work of a run, not only of one
 * query: many readers of one large computed value each evaluate it. */
typedef struct bnf_eval_spend {
	size_t bytes; /* of values computed into memory, as doubles */
	size_t nodes; /* node evaluations */
} bnf_eval_spend;

typedef struct bnf_graph {
	Onnx__GraphProto *g;
	const struct bnf_graph *parent; /* enclosing graph for outer-scope names, or NULL */
	const char *path;               /* input file, for messages */
	bnf_err *fail;                  /* where indexing and planning record failures (may be NULL) */
	int ir_version;
	int opset;                      /* default-domain opset in force */
	bool fold_overridable;          /* treat initializers listed as graph inputs as constants */
	bool is_function;               /* a function body: its inputs are the function's */
	const struct bnf_payloads *payloads; /* payloads not in memory (may be NULL) */
	/* Bytes one value computed from constants may take as doubles
	 * (bnf_graph_const_eval); 0 means BNF_MAX_NEW_BYTES. */
	size_t eval_max_bytes;
	/* The run's spending, limited to BNF_EVAL_RUN_FACTOR times the cap in
	 * bytes and BNF_EVAL_RUN_NODES node evaluations (constants.h); NULL: no
	 * run-wide limit, each query is bounded alone. */
	struct bnf_eval_spend *eval_spend;
	bnf_value *slots;
	size_t cap;                     /* power of two */
	size_t used;
	/* Node indices, every producer before its readers: the listed order
	 * when the graph is sorted (as ONNX asks), else a topological one. */
	size_t *order;
	/* Shapes recorded for names of this graph (shapes.c fills them). */
	bnf_shape *shapes;
	size_t n_shapes, shapes_cap;
} bnf_graph;

/* Build the index of g; fail (may be NULL) is kept in gi->fail.  Errors
 * return -1 after recording one line naming the file in fail: a name
 * produced or defined twice, a cycle (BNFOLD_E_NOT_ONNX), or memory
 * running out (BNFOLD_E_NOMEM). */
int bnf_graph_build(bnf_graph *gi, Onnx__GraphProto *g, const bnf_graph *parent,
		    const char *path, int ir_version, int opset, bool fold_overridable, bnf_err *fail);
void bnf_graph_free(bnf_graph *gi);

/* The entry for name in this graph only, or NULL. */
bnf_value *bnf_graph_value(const bnf_graph *gi, const char *name);
/* Find or insert the entry for name (copied);
 * NULL on allocation failure.  Invalidates earlier bnf_value pointers. */
bnf_value *bnf_graph_value_add(bnf_graph *gi, const char *name);

/* What is known of the shape of name, read by a node of gi's graph: the
 * shape recorded for it in gi or in the enclosing graph that defines it
 * (bnf_graph_set_shape), else an initializer's dims, else unknown.  Fills
 * *out and returns true when the rank is known. */
bool bnf_graph_shape(const bnf_graph *gi, const char *name, bnf_shape *out);
/* Record s as the shape of name, defined in gi's graph (replacing any
 * shape recorded before).  -1 when memory runs out. */
int bnf_graph_set_shape(bnf_graph *gi, const char *name, const bnf_shape *s);

/* Make the main graph's index aware of the model's training_info: reads of
 * its names by the training graphs (initialization, algorithm) count as
 * consumers, like reads in subgraphs, and the initializers that a binding
 * assigns are marked `trained` (read as not constant).  -1 when memory runs
 * out. */
int bnf_graph_add_training(bnf_graph *gi, Onnx__TrainingInfoProto *const *ti, size_t n);

/* Add every value name of g and of the subgraphs nested in it (node inputs
 * and outputs, initializers, sparse initializers, graph inputs, outputs and
 * value_info) to `names`, a zeroed bnf_graph used as a set of names.
 * -1 when memory runs out. */
int bnf_graph_collect_names(bnf_graph *names, const Onnx__GraphProto *g);

/* True when an initializer listed as a graph input may be treated as a
 * constant: IR < 4 (inputs must list every initializer) or --fold-overridable. */
bool bnf_graph_inputs_are_defaults(const bnf_graph *gi);

/* The attribute called name on node, or NULL. */
Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *node, const char *name);
/* Integer / float attribute with the spec's default when absent. */
int64_t bnf_node_attr_int(const Onnx__NodeProto *node, const char *name, int64_t def);
float bnf_node_attr_float(const Onnx__NodeProto *node, const char *name, float def);
/* True for the default ONNX domain ("" or "ai.onnx"). */
bool bnf_node_is_onnx(const Onnx__NodeProto *node, const char *op_type);
/* Node name for messages: its name, or "<op> #index" when empty. */
const char *bnf_node_label(const Onnx__NodeProto *node, int index, char *buf, size_t len);

#endif
