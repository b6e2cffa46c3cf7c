/* Graph surgery: carry out one plan on a graph in memory (remove the node,
 * rewire, write or copy the folded weight and bias), then drop what lost
 * its last reader.  The driver (driver.c) decides what to apply. */
#ifndef BNF_SURGERY_H
#define BNF_SURGERY_H

#include <stdbool.h>

#include "common.h"
#include "fold_options.h"
#include "graph.h"
#include "payload.h"
#include "plan.h"
#include "result.h"
#include "verify.h"

/* One run over a model, shared by the graphs it folds. */
typedef struct bnf_fold_run {
	const char *path;
	bnf_err *fail;           /* where the run records its failure (may be NULL) */
	int ir;
	const bnf_fold_options *opt;
	bnf_result *res;
	const Onnx__ModelProto *model;
	/* Every value name in the model's graphs, subgraphs included, and every
	 * name bnfold adds: a new name must differ from all of them, since a
	 * subgraph may neither reuse nor shadow a name of an enclosing graph. */
	bnf_graph names;
	/* What the evaluator spent over the run, every graph's index pointing
	 * here (bnf_graph.eval_spend); zero at the start of each run. */
	bnf_eval_spend eval_spend;
} bnf_fold_run;

/* One graph being folded. */
typedef struct bnf_edit {
	bnf_graph gi;
	Onnx__GraphProto *g;
	char *gname;
	bool is_subgraph;
	bool in_function;        /* a function body: no initializers, so no new tensors */
	struct bnf_edit *parent; /* the enclosing graph's context, or NULL */
	bnf_fold_run *run;
	const char *path;
	bnf_policy pol;          /* what plans may do; apply spends pol.new_bytes_left */
	bool *node_removed;      /* per node, as indexed at the start */
	bool *init_removed;      /* per initializer, grows with new ones */
	size_t init_cap;
	size_t init_room, input_room; /* capacity of g->initializer, g->input once grown */
	bnf_strlist released;    /* names that lost a reader */
	bnf_strlist killed;      /* names no longer defined */
	bnf_strlist drop_inputs; /* graph inputs to remove */
	bnf_payloads *pl;        /* may be NULL */
	bnf_result *res;
} bnf_edit;

/* Carry out a plan whose reason is BNF_FOLD, recording vr (the check made
 * before, or NULL) with the fusion in c->res.  Returns 1 when folded, 0
 * when the fold turned out impossible here (a BN's recorded as a skip),
 * -1 after recording the failure in c->run->fail: memory ran out
 * (BNFOLD_E_NOMEM), or the model needs more folded tensors than one model
 * may have (BNFOLD_E_NOT_ONNX). */
int bnf_edit_apply(bnf_edit *c, bnf_plan *p, const bnf_verify *vr);

/* Mark initializers and constant-producing nodes that lost their last
 * reader to a fold (never ones unused to begin with).  -1 when memory
 * runs out (not reported). */
int bnf_edit_sweep(bnf_edit *c);

/* Remove from the graph what was marked, freeing it. */
void bnf_edit_compact(bnf_edit *c);

#endif
