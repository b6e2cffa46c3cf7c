/* What one run found, folded and skipped: filled by the driver and the
 * surgery, read by the report and the public API.  Strings are owned
 * copies. */
#ifndef BNF_RESULT_H
#define BNF_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

#include "onnx.pb-c.h"
#include "op_counts.h"
#include "plan.h"
#include "verify.h"

typedef struct bnf_fusion {
	/* bn and bn_output name the node that went (a BN, or a Mul/Add);
	 * layer_op_after differs from layer_op when a MatMul became a Gemm. */
	char *graph, *layer, *layer_op, *layer_op_after, *bn, *node_op, *bn_output, *weight, *bias;
	bnf_pattern pattern;
	size_t channels;
	int dtype;
	double eps;
	bool bias_created;
	bool weight_copied;
	bool verified;        /* verify holds the numeric check of this fusion */
	char *shapes;         /* what shape inference said of the values the plan read */
	char *bn_label, *layer_label; /* the nodes named for people (bnf_node_label_copy) */
	bnf_verify verify;
	size_t model_order;   /* see bnf_result_set_order; SIZE_MAX until set */
} bnf_fusion;

typedef struct bnf_skip {
	/* bn and bn_output name the node left in place: a BN, or a Mul/Add
	 * next to a layer (op) */
	char *graph, *bn, *bn_output, *layer; /* layer may be NULL */
	bnf_op_kind op;
	char *shapes;
	char *bn_label, *layer_label; /* for people; layer_label NULL when layer is */
	bnf_reason reason;
	char *message;
	size_t model_order;
} bnf_skip;

typedef struct bnf_result {
	bnf_fusion *fusions;  /* BN fusions and Mul/Add fusions */
	size_t n_fusions, cap_fusions;
	bnf_skip *skips;
	size_t n_skips, cap_skips;
	size_t bn_found;
	size_t nodes_before, nodes_after;
	bnf_op_counts ops;     /* nodes per op type, before and after */
	/* Bytes of the input model file and of its external data files; of
	 * the output model and of its data file (0 until written). */
	size_t bytes_in, bytes_in_data, bytes_out, bytes_out_data;
	size_t inputs_removed; /* graph inputs dropped with --fold-overridable */
	size_t new_bytes;      /* bytes of the new weight tensors created */
	bool unscanned_nonfinite; /* a weight left unscanned (defer_scan) folded to NaN or Inf */
	struct bnf_verify_batch *pending; /* checks left to run (defer_verify), or NULL */
	/* The options the run folded with, as the report states them. */
	bool fold_overridable, verify, tolerance_set;
	double tolerance;
	long long ir_version;
	long long opset;       /* -1 when the default domain is not imported */
	char *producer_name, *producer_version;
} bnf_result;

void bnf_result_free(bnf_result *r);
/* A node named for people, in every message, table and report: its name,
 * else "(unnamed OP, output NAME)" (or "(unnamed OP)"); NULL when memory
 * runs out. */
char *bnf_node_label_copy(const Onnx__NodeProto *n);
/* True when the fusion removed a BatchNormalization (its pattern's op). */
bool bnf_fusion_is_bn(const bnf_fusion *f);
/* Record the skip of plan p for node (in graph `graph`; layer is the layer
 * it would fold into, or NULL).  0, or -1 when memory runs out. */
int bnf_result_add_skip(bnf_result *r, const char *graph, const bnf_plan *p, const Onnx__NodeProto *node,
			const Onnx__NodeProto *layer);
/* Record a fusion made by plan p: layer_op and layer_label are the layer's
 * op type and name for people before the edit (a MatMul may have become a
 * Gemm; an unnamed layer is named by the output it had), vr the check
 * made, or NULL.  0, or -1 when memory runs out. */
int bnf_result_add_fusion(bnf_result *r, const char *graph, const bnf_plan *p, const Onnx__NodeProto *node,
			  const Onnx__NodeProto *layer, const char *layer_op, const char *layer_label,
			  bool weight_copied, bool bias_created, const bnf_verify *vr);
/* Give each fusion and skip its node's position among `names`, the output
 * names of the model's BatchNormalization nodes in file order (the first
 * one not given yet that matches), or SIZE_MAX. -1 when memory runs out. */
int bnf_result_set_order(bnf_result *r, const bnf_strlist *names);
/* Start the checks left in r->pending on a thread of their own (to run
 * while the model is written). */
void bnf_result_verify_start(bnf_result *r);
/* Wait for them and record their results in r->fusions: only then do the
 * verify counts below hold.  0, or -1 when a check ran out of memory,
 * after recording BNFOLD_E_NOMEM in e (may be NULL). */
int bnf_result_verify_finish(bnf_result *r, bnf_err *e);
/* How many of the skips are of a BatchNormalization. */
size_t bnf_result_bn_skipped(const bnf_result *r);
/* How many of the fusions removed a BatchNormalization. */
size_t bnf_result_bn_folded(const bnf_result *r);
/* How many fusions were verified, and how many of those failed the check. */
size_t bnf_result_verified(const bnf_result *r);
size_t bnf_result_verify_failed(const bnf_result *r);

#endif
