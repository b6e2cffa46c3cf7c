/* The numeric check of one fusion, on the weights before the fusion: the
 * original arithmetic (the layer, then the BN / Mul / Add after it; or the
 * BN, then the Conv after it) against the folded layer with its weight and
 * bias exactly as they will be stored, on deterministic probe inputs,
 * accumulated in double.
 * Pure: reads the graph and the plan, never edits, writes or prints.
 *
 * Files: verify_case.c builds the case of a plan from the graph;
 * verify_run.c does its arithmetic; verify_sums.c and verify_units.c sum
 * over the weight (verify_sums.h), verify_lanes.c the float32 elements
 * in four lanes (verify_lanes.h); verify_batch.c runs jobs beside the
 * writer. */
#ifndef BNF_VERIFY_H
#define BNF_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "plan.h"
#include "graph.h"

/* Probe outputs per output channel: one whose input is all zeros (the bias
 * alone, checked against its own magnitude) and BNF_VERIFY_RANDOM with
 * pseudo-random inputs in [-1, 1) over the channel's whole receptive field,
 * so every stored weight element takes part.  A BN before a Conv that pads
 * adds a border probe: the padded taps read zeros after the BN. */
#define BNF_VERIFY_RANDOM 2

/* How the checks run, given by the caller (the library reads no
 * environment).  The numbers come out the same whatever it says; zero is
 * the default.  Every function below that takes a config takes NULL for
 * the default. */
typedef struct bnf_verify_config {
	bool no_simd; /* the baseline code for the float32 sums, even on a CPU with AVX2 */
	int threads;  /* 1: a large weight is summed on the calling thread only; 0 (or any other
		       * value): on two threads when there are two CPUs */
} bnf_verify_config;

/* The outcome for one fusion.
 *
 * For each probe output, err = |folded - original| and
 *   S = the sum of the magnitudes of the terms of the original arithmetic
 *       (every |w x| product of the layer, |bias|, the BN's |mean| and |B|,
 *       each times the BN scale where it applies), plus (n + 1) times the
 *       smallest normal number of the dtype (below it rounding is absolute),
 * rel = err / S.  A faithful fold stores every term rounded once to the
 * dtype, so rel <= u (the dtype's unit roundoff) up to the double-precision
 * rounding of the two sums, whatever cancels in the output. */
typedef struct bnf_verify {
	double max_abs_err;    /* max err over the probe outputs */
	double max_rel_err;    /* max rel */
	double tolerance;      /* the bound max_rel_err is held to */
	size_t outputs;        /* probe outputs compared */
	size_t terms;          /* n: products in one output (the receptive field) */
	size_t worst_channel;  /* output channel of max_rel_err */
	bool ok;               /* max_rel_err <= tolerance (false when problem is set) */
	const char *problem;   /* the fusion could not be modelled (static text), else NULL */
} bnf_verify;

/* The default tolerance for a fusion of dtype with n products per output:
 *   2u + (n + 8) * 2^-52,
 * u = 2^-24 (float32), 2^-53 (float64), 2^-11 (float16), 2^-8 (bfloat16):
 * twice the bound of the single rounding to the stored type, plus the
 * worst-case rounding of the double-precision sums on both sides. */
double bnf_verify_default_tolerance(int dtype, size_t n);

/* --- the arithmetic, on plain numbers --- */

typedef enum {
	BNF_VL_CONV,          /* W [C_out, C_in/group, k...] */
	BNF_VL_CONVTRANSPOSE, /* W [C_in, C_out/group, k...] */
	BNF_VL_GEMM,          /* B [K, N], or [N, K] with trans_b (MatMul: Gemm with alpha = beta = 1) */
} bnf_verify_layer;

typedef enum { BNF_VOP_BN, BNF_VOP_MUL, BNF_VOP_ADD } bnf_verify_op;

/* The original arithmetic of one fusion.  The layer computes, for output
 * channel o,  alpha * sum_i W[i] x[i] + beta * bias[o]  over the elements i
 * of W that belong to o (its receptive field); then the node applies
 *   BN:  (y - mean[o]) / sqrt(var[o] + eps) * gamma[o] + bn_b[o]
 *   Mul: y * k[o]          Add: y + k[o]        (k_len 1 broadcasts)
 * or, with bn_before, the BN applies to the layer's input channels first. */
typedef struct bnf_verify_case {
	bnf_verify_layer layer;
	const bnf_tview *weight;   /* the original weight */
	size_t group;              /* Conv, ConvTranspose */
	bool trans_b;              /* Gemm */
	double alpha, beta;        /* Gemm attributes; 1 for the others */
	const double *bias;        /* NULL when the layer has none */
	size_t bias_len;           /* output channels, or 1 (broadcast Gemm C) */
	bnf_verify_op op;
	bool bn_before;            /* BN -> Conv */
	const double *gamma, *bn_b, *mean, *var; /* BN, `channels` values each */
	double eps;
	const double *k;           /* Mul / Add, k_len values */
	size_t k_len;
	size_t channels;           /* length of the BN parameters (or of k when per channel) */
	/* BN -> Conv that pads: the spatial axis (0-based, after the two
	 * channel axes) whose first (or, with pad_at_end, last) tap reads
	 * padding; -1 when the Conv does not pad. */
	int pad_axis;
	bool pad_at_end;
	double folded_alpha, folded_beta; /* the folded layer's Gemm alpha and beta */
} bnf_verify_case;

/* Evaluate vc and the folded layer that p describes (p->dtype,
 * p->scale_weight with p->transform over p->weight.view, p->write_bias with
 * p->new_bias, rounded as the writer stores them) and fill v.  tolerance < 0
 * selects bnf_verify_default_tolerance().  cfg as above (NULL: default).
 * Returns 0, or -1 when memory runs out, after recording BNFOLD_E_NOMEM
 * in e (may be NULL).  A fusion that fails its check is not an error:
 * v says so. */
int bnf_verify_run(const bnf_verify_case *vc, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
		   bnf_verify *v, bnf_err *e);

/* Build the case of plan p (reason BNF_FOLD) from gi, whose tensors must
 * still hold their original values (before the fusion is applied), and
 * run it with cfg (NULL: default).  0, or -1 as bnf_verify_run. */
int bnf_verify_plan(const bnf_graph *gi, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
		    bnf_verify *v, bnf_err *e);

/* A check built now and run later, on another thread while the model is
 * written: possible when the layer's original weight is read from the
 * input file (edits then leave it alone) and the case owns the rest. */
typedef struct bnf_verify_job bnf_verify_job;

/* bnf_verify_plan, except that a check that can run later is not run:
 * *job is set instead (v untouched; the job keeps a copy of *cfg).
 * Otherwise *job is NULL and v filled.  0, or -1 when memory runs out,
 * after recording BNFOLD_E_NOMEM in e (may be NULL). */
int bnf_verify_plan_later(const bnf_graph *gi, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
			  bnf_verify *v, bnf_verify_job **job, bnf_err *e);
/* Run j now on the calling thread and fill v, with the config it was built
 * with, except that one_thread sums every weight on this thread alone (a
 * thread beside the writer leaves the other CPU to it).  0, or -1 when
 * memory runs out, after recording BNFOLD_E_NOMEM in e (may be NULL; an
 * error only this thread writes while it runs). */
int bnf_verify_job_run(const bnf_verify_job *j, bool one_thread, bnf_verify *v, bnf_err *e);
void bnf_verify_job_free(bnf_verify_job *j);

/* Jobs to run together, each with a tag for its result. */
typedef struct bnf_verify_batch bnf_verify_batch;

/* Add j (the batch owns it from now on, also on failure: -1 when memory
 * runs out, after recording BNFOLD_E_NOMEM in e, which may be NULL). */
int bnf_verify_batch_add(bnf_verify_batch **b, bnf_verify_job *j, size_t tag, bnf_err *e);
/* Start running the jobs on a thread of their own, each summed on that
 * thread alone (if none can start, bnf_verify_batch_finish runs them, each
 * with its own config). */
void bnf_verify_batch_start(bnf_verify_batch *b);
/* Wait for the jobs (running any not run yet) and give each result to
 * put(tag, v, ctx); then free the batch.  0, or -1 when a job ran out of
 * memory, after copying its failure (BNFOLD_E_NOMEM) into e (may be NULL).
 * The jobs record into the batch, never into e: e is written here, on the
 * caller's thread, once they are done. */
int bnf_verify_batch_finish(bnf_verify_batch *b, void (*put)(size_t tag, const bnf_verify *v, void *ctx), void *ctx,
			    bnf_err *e);
/* Wait for the jobs, drop their results, free the batch. */
void bnf_verify_batch_free(bnf_verify_batch *b);

#endif
