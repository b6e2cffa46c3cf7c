/* Helpers shared by the planners (plan_bn.c, plan_affine.c): each
 * returns 1 when the plan may go on, 0 after recording a skip in p, -1 on
 * an error (recorded in gi->fail) unless said otherwise. */
#ifndef BNF_PLAN_INTERNAL_H
#define BNF_PLAN_INTERNAL_H

#include "chain.h"
#include "plan.h"

#define BNF_PLAN_CHUNK 4096 /* elements per pass over a weight */

/* Record reason r and the message in p; returns 0. */
int bnf_plan_skip(bnf_plan *p, bnf_reason r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record in gi->fail that memory ran out planning node; returns -1. */
int bnf_plan_oom(const bnf_graph *gi, const Onnx__NodeProto *node);
/* Resolve input `name` (what = "weight", "scale", ...) into c, which may
 * be computed from constants (bnf_graph_const_eval): release it with
 * bnf_const_release (bnf_plan_free does for p->weight and p->bias).  It
 * owns nothing unless 1 is returned.  is_param picks the reason when it
 * is not constant (param_not_constant, else weight_not_constant). */
int bnf_plan_resolve(const bnf_graph *gi, bnf_plan *p, const char *name, const char *what, bool is_param,
		     bnf_const *c);
/* The first attribute of n that refers to an attribute of the enclosing
 * function (its value is set per call), or NULL; and the skip for it. */
const Onnx__AttributeProto *bnf_plan_attr_reference(const Onnx__NodeProto *n);
int bnf_plan_skip_attr_reference(bnf_plan *p, const Onnx__NodeProto *n, const Onnx__AttributeProto *a);
/* True when n is a layer bnfold folds into (for bnf_chain_back). */
bool bnf_plan_is_layer(const Onnx__NodeProto *n);
/* x (the layer's output) and every value along ch read by one node alone
 * and none a graph output: else the folded values would reach others. */
int bnf_plan_chain_alone(const bnf_graph *gi, bnf_plan *p, const bnf_value *x, const bnf_chain *ch);
/* The layer's output channels reach axis `want` of what the node reads. */
int bnf_plan_chain_axis(const bnf_graph *gi, bnf_plan *p, const bnf_chain *ch, bnf_layer_kind kind, int want);
/* MatMul mm may become a Gemm to take a bias: its input has rank 2. */
int bnf_plan_to_gemm(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *mm);
/* The kind of layer n is (default domain), BNF_LAYER_NONE when none. */
bnf_layer_kind bnf_plan_layer_kind(const Onnx__NodeProto *n);
/* Product of v's dims from axis first on. */
size_t bnf_plan_prod_from(const bnf_tview *v, size_t first);
/* A float view read into a new array, or NULL when memory runs out. */
double *bnf_plan_read_all(const bnf_tview *v);
/* The layer's weight, output channels, channel layout and current bias
 * (per-channel values the output gets, *old_bias, NULL when none). */
int bnf_plan_layer_geometry(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer, bnf_layer_kind kind,
			    double **old_bias);
/* Every folded bias value representable in the dtype. */
int bnf_plan_check_bias(bnf_plan *p);
/* Complete the transform from p->scale and check the weight once: every
 * element finite, every folded element representable; within the policy's
 * room for new tensors.  -1 only when memory runs out (not reported). */
int bnf_plan_check_weight(const bnf_policy *pol, bnf_plan *p, const char *wname);
/* The four BN parameters as n-element arrays vals[0..3] = scale, B, mean,
 * var (free with bnf_plan_free4); `what` names the layer after which the BN
 * sits, NULL for the Conv after it. */
int bnf_plan_bn_params(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *bn, size_t n, const char *what,
		       double *vals[4]);
/* p->scale from the BN parameters: true, or false after a skip. */
bool bnf_plan_bn_scale(bnf_plan *p, double *const vals[4]);
void bnf_plan_free4(double *v[4]);

#endif
