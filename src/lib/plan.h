/* The plan: whether one node folds into a layer, how (the pattern, the
 * per-channel scale and the new bias), or why not (a reason code).  The
 * planners are pure: they read the graph index and tensors, and never
 * edit, write or print. */
#ifndef BNF_PLAN_H
#define BNF_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "constants.h"
#include "graph.h"
#include "patterns.h"

/* --- arithmetic, on plain arrays --- */

/* s[c] = gamma[c] / sqrt(var[c] + eps) for n channels, in double.
 * Returns BNF_NON_FINITE_PARAM when any input or eps is NaN/Inf,
 * BNF_NONPOSITIVE_VARIANCE when var + eps <= 0, else BNF_FOLD; *bad is set
 * to the first offending channel. */
bnf_reason bnf_bn_scale(const double *gamma, const double *mean, const double *var,
			const double *beta, double eps, size_t n, double *s, size_t *bad);

/* out[c] = (b[c] - mean[c]) * s[c] + beta[c]; b may be NULL (no bias: 0). */
void bnf_bn_bias(const double *b, const double *mean, const double *beta, const double *s,
		 size_t n, double *out);

/* --- the decision for one node --- */

typedef enum {
	BNF_ABSORB_OUTPUT, /* the node after the layer goes; the layer takes its output name */
	BNF_ABSORB_INPUT,  /* a BN before the layer goes; the layer reads the BN's input */
} bnf_absorb;

/* BNF_MAX_NEW_BYTES (graph.h): the default cap on new weight tensors. */

/* What the caller allows a plan, apart from what the graph says. */
typedef struct bnf_policy {
	/* Bytes that new weight tensors (copies of shared weights, weights
	 * made by ConstantOfShape) may still take; a fold needing more is
	 * skipped as weight_too_large. */
	size_t new_bytes_left;
	/* Do not scan weights read in place for NaN, Inf and overflow: the
	 * scaling flags them (bnf_fold_options.defer_scan). */
	bool defer_scan;
} bnf_policy;

typedef struct bnf_plan {
	bnf_reason reason;
	char message[400];
	/* The report lists the node: always a BN; a Mul or Add only when it
	 * is next to a layer and its other input is a constant, so that it
	 * looks like a fold that was not made (else it is plain arithmetic). */
	bool reported;
	char shapes[320];     /* what shape inference says of the values the plan reads:
			       * filled by bnf_plan_shapes, only for what is recorded */
	int x_input;          /* which input of the node carries the layer's values (BN: 0) */
	int param_input;      /* which holds its parameter or constant (BN: 1, the scale) */
	int node;             /* the BatchNormalization / Mul / Add node that goes away */
	bnf_op_kind op;       /* what that node is */
	bnf_layer_kind layer_kind; /* the layer's kind, BNF_LAYER_NONE when there is none */
	bnf_pattern pattern;  /* which fold this is (BNF_PAT_NONE before one is found) */
	int layer_node;       /* the layer it folds into, -1 when there is none */
	int tail_node;        /* BNF_ABSORB_OUTPUT: the node that takes over the removed node's
			       * output name: the layer, or the last of the nodes that only
			       * move data between it and the BN (chain.h) */
	bnf_absorb absorb;
	size_t channels;      /* BN / per-channel constant length */
	int dtype;            /* weight dtype */
	double eps;
	bnf_const weight;
	bnf_const bias;       /* the layer's current bias (Gemm: C), valid when has_bias */
	bool has_bias;
	bool scale_weight;    /* false when only the bias changes (Add) */
	bool write_bias;      /* false when the bias stays absent (Mul on a layer without bias) */
	size_t bias_len;      /* elements of the new bias: the layer's output channels */
	bnf_transform transform;
	double *scale;        /* per channel of transform.layout */
	double *new_bias;     /* bias_len values, unrounded */
	bool to_gemm;         /* the MatMul becomes a Gemm (to take the bias) */
	bool reset_gemm_beta; /* the Gemm's beta attribute must become 1 */
} bnf_plan;

/* Decide whether the BatchNormalization at node index `node` of gi folds
 * into the layer before it (Conv, ConvTranspose, Gemm, MatMul) or, failing
 * that, into a Conv after it.  Returns 0 with p->reason set (BNF_FOLD or
 * why not), or -1 after recording the failure in gi->fail: the model is
 * malformed (inconsistent tensor data: BNFOLD_E_NOT_ONNX) or memory runs
 * out (BNFOLD_E_NOMEM). */
int bnf_plan_bn(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p);

/* The same for a Mul or Add of a per-channel constant after a Conv,
 * ConvTranspose, Gemm or MatMul (the form some exporters give an inference
 * BN, or a MatMul's bias).  A skip is reported only when the node looks
 * like such a fold (p->reported). */
int bnf_plan_affine(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p);

/* The planner for a node, by its op type (default domain): bnf_plan_bn for
 * BatchNormalization, bnf_plan_affine for Mul and Add, else NULL.  *op is
 * set to the node's kind.  Whether a skip is reported is the plan's
 * `reported`. */
typedef int (*bnf_planner)(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p);
bnf_planner bnf_planner_for(const Onnx__NodeProto *node, bnf_op_kind *op);

/* Fill p->shapes: what inference says of the layer's input and output, the
 * node's input and its parameter ("?" where unknown).  Text for people,
 * made only for plans that are recorded (formatting every plan is not
 * free on graphs of many thousand nodes). */
void bnf_plan_shapes(const bnf_graph *gi, bnf_plan *p);

void bnf_plan_free(bnf_plan *p);

#endif
