/* Index of one graph: which node produces each name, how many node inputs
 * read it, which initializer holds it, and whether it is a graph input or
 * output; plus the lookup of constants through initializers, Constant,
 * Identity and ConstantOfShape nodes and enclosing graphs. */
#ifndef BNF_GRAPH_H
#define BNF_GRAPH_H

#include <stdbool.h>
#include <stddef.h>

#include "onnx.pb-c.h"
#include "tensor.h"

/* Default cap on the bytes of new weight tensors folding may create in one
 * model (copies of shared weights, weights made by ConstantOfShape): a few
 * bytes of shape, or one weight shared by thousands of Convs, could
 * otherwise ask for terabytes. */
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
	unsigned copies;   /* edit.c: the last number given to a new name made from this one */
} bnf_value;

typedef struct bnf_graph {
	Onnx__GraphProto *g;
	const struct bnf_graph *parent; /* enclosing graph for outer-scope names, or NULL */
	const char *path;               /* input file, for messages */
	int ir_version;
	int opset;                      /* default-domain opset in force */
	bool fold_overridable;          /* treat initializers listed as graph inputs as constants */
	bool is_function;               /* a function body: its inputs are the function's */
	const struct bnf_payloads *payloads; /* payloads not in memory (may be NULL) */
	size_t new_bytes_left;          /* what new weight tensors may still take (see BNF_MAX_NEW_BYTES) */
	bool defer_scan;                /* see bnf_fold_options.defer_scan */
	bnf_value *slots;
	size_t cap;                     /* power of two */
	size_t used;
	/* Node indices, every producer before its readers: the listed order
	 * when the graph is sorted (as ONNX asks), else a topological one. */
	size_t *order;
} bnf_graph;

/* Build the index of g.  Errors (two producers for one name, a cycle) are
 * reported with bnf_error naming the file and return -1. */
int bnf_graph_build(bnf_graph *gi, Onnx__GraphProto *g, const bnf_graph *parent,
		    const char *path, int ir_version, int opset, bool fold_overridable);
void bnf_graph_free(bnf_graph *gi);

/* The entry for name in this graph only, or NULL. */
bnf_value *bnf_graph_value(const bnf_graph *gi, const char *name);
/* Find or insert the entry for name (copied);
 * NULL on allocation failure.  Invalidates earlier bnf_value pointers. */
bnf_value *bnf_graph_value_add(bnf_graph *gi, const char *name);

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

/* Why a name does or does not resolve to a constant. */
typedef enum {
	BNF_CONST_OK = 0,
	BNF_CONST_NOT_CONSTANT,  /* computed at run time or a plain graph input */
	BNF_CONST_OVERRIDABLE,   /* initializer that is also a graph input (IR >= 4) */
	BNF_CONST_MALFORMED,     /* inconsistent tensor: bad input */
	BNF_CONST_UNSUPPORTED,   /* a constant bnfold cannot read (external data, sparse, ...) */
	BNF_CONST_BAD_DTYPE,     /* a tensor of a data type bnfold does not read */
} bnf_const_status;

typedef struct bnf_const {
	bnf_tview view;
	/* The tensor that holds the data (initializer or Constant attribute);
	 * NULL when the value is synthesized (ConstantOfShape, value_float). */
	Onnx__TensorProto *tensor;
	/* True when nothing but the one consumer that asked reaches `tensor`
	 * (every name on the way has one reader, none is a graph output, and
	 * the tensor lives in the asking graph), so it may be edited in place. */
	bool exclusive;
	bool is_initializer;  /* the source is an initializer (not a Constant node) */
	bool is_graph_input;  /* ... that is also listed as a graph input */
	char msg[256];        /* why not OK, for reports and errors */
	double *owned;        /* computed values (bnf_graph_const_eval), freed by bnf_const_release */
} bnf_const;

/* Resolve name, read by one node input of gi's graph, to a constant. */
bnf_const_status bnf_graph_const(const bnf_graph *gi, const char *name, bnf_const *c);

/* As bnf_graph_const, and also evaluate small float expressions over
 * constants (Add, Sub, Mul, Div of equal shapes or a single value; Sqrt,
 * Neg, Abs, Reciprocal), rounding each result to its type as a runtime
 * would.  Such a value has no tensor to edit; release it with
 * bnf_const_release after reading. */
bnf_const_status bnf_graph_const_eval(const bnf_graph *gi, const char *name, bnf_const *c);
void bnf_const_release(bnf_const *c);

/* The rank recorded for name (graph input, value_info, graph output or
 * initializer, here or in an enclosing graph), else that of the input of a
 * rank-preserving elementwise op producing it (Relu, Cast, ...); -1 when
 * unknown. */
int bnf_graph_rank(const bnf_graph *gi, const char *name);

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
