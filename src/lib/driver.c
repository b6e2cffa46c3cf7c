#include "driver.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "shapes.h"
#include "surgery.h"
#include "visit.h"

static int fold_graph(bnf_fold_run *run, Onnx__GraphProto *g, const char *gname, bnf_edit *parent, int opset,
		      bool in_function);

/* Fold the graphs held by the nodes of c's graph that are still there,
 * each named by its own name or its place ("main/loop_1/body"). */
static int fold_subgraphs(bnf_edit *c)
{
	char lb[64];
	for (size_t n = 0; n < c->g->n_node; n++) {
		const Onnx__NodeProto *node = c->g->node[n];
		Onnx__AttributeProto *at;
		Onnx__GraphProto *sg;
		if (c->node_removed[n])
			continue;
		for (size_t k = 0; (sg = bnf_node_subgraph(node, k, &at)) != NULL; k++) {
			char *name = sg->name && sg->name[0]
					     ? bnf_strdup(sg->name)
					     : bnf_asprintf("%s/%s/%s", c->gname, bnf_node_label(node, (int)n, lb, sizeof(lb)),
							    at->name ? at->name : "");
			int r;
			if (!name)
				return bnf_fail(c->run->fail, BNFOLD_E_NOMEM, "%s: out of memory", c->path);
			r = fold_graph(c->run, sg, name, c, c->gi.opset, false);
			free(name);
			if (r < 0)
				return -1;
		}
	}
	return 0;
}

/* Plan node n and, when it folds, check the fusion (now, or later from
 * the input file: opt->defer_verify) and apply it.  *progress is set when
 * it folded, *handled when it never will.  0, or -1 after recording the
 * failure in c->run->fail. */
static int fold_node(bnf_edit *c, size_t n, bool *handled, bool *progress)
{
	const bnf_fold_options *opt = c->run->opt;
	bnf_result *res = c->res;
	bnf_op_kind op;
	bnf_planner plan = bnf_planner_for(c->g->node[n], &op);
	bnf_verify_config vcfg = {.no_simd = opt->no_simd, .threads = opt->threads};
	bnf_verify vr;
	bnf_verify_job *job = NULL;
	bnf_plan p;
	int r;

	if (!plan)
		return 0;
	if (plan(&c->gi, &c->pol, (int)n, &p) < 0) {
		bnf_plan_free(&p);
		return -1;
	}
	if (p.reason != BNF_FOLD) {
		bnf_plan_free(&p);
		return 0;
	}
	/* Verify reads the original tensors: before apply edits them, or
	 * later from the input file (defer_verify).  It evaluates again the
	 * constants the plan has just evaluated, work the run's budget has
	 * charged once already: not charged again, so a budget spent by the
	 * plan cannot fail the check of the fold it found. */
	c->gi.eval_spend = NULL;
	r = opt->no_verify ? 0
			   : bnf_verify_plan_later(&c->gi, &p, opt->tolerance_set ? opt->tolerance : -1.0, &vcfg, &vr,
						   opt->defer_verify ? &job : NULL, c->run->fail);
	c->gi.eval_spend = &c->run->eval_spend;
	if (r < 0) {
		bnf_plan_free(&p);
		return -1;
	}
	bnf_plan_shapes(&c->gi, &p);
	r = bnf_edit_apply(c, &p, opt->no_verify || job ? NULL : &vr);
	if (r == 0)
		*handled = true;
	*progress = *progress || r == 1;
	if (job && r == 1 && bnf_verify_batch_add(&res->pending, job, res->n_fusions - 1, c->run->fail) < 0)
		r = -1;
	else if (job && r != 1)
		bnf_verify_job_free(job);
	bnf_plan_free(&p);
	return r < 0 ? -1 : 0;
}

/* Record why each BatchNormalization, and each Mul/Add that looks like a
 * fold, still in the graph stays. */
static int record_skips(bnf_edit *c, const bool *handled)
{
	Onnx__GraphProto *g = c->g;
	for (size_t n = 0; n < g->n_node; n++) {
		bnf_op_kind op;
		bnf_planner plan;
		bnf_plan p;
		int r;
		if (c->node_removed[n] || handled[n] || !(plan = bnf_planner_for(g->node[n], &op)))
			continue;
		if (plan(&c->gi, &c->pol, (int)n, &p) < 0) {
			bnf_plan_free(&p);
			return -1;
		}
		if (!p.reported) {
			bnf_plan_free(&p);
			continue;
		}
		/* The last pass planned every node left and folded nothing, so
		 * planning again gives the same reason; "fold" now can only come
		 * from a step that failed then for want of memory. */
		if (p.reason == BNF_FOLD) {
			bnf_plan_free(&p);
			return bnf_fail(c->run->fail, BNFOLD_E_NOMEM, "%s: out of memory planning '%s'", c->path,
					g->node[n]->n_output ? g->node[n]->output[0] : "?");
		}
		bnf_plan_shapes(&c->gi, &p);
		r = bnf_result_add_skip(c->res, c->gname, &p, g->node[n], p.layer_node >= 0 ? g->node[p.layer_node] : NULL);
		bnf_plan_free(&p);
		if (r < 0)
			return bnf_fail(c->run->fail, BNFOLD_E_NOMEM, "%s: out of memory", c->path);
	}
	return 0;
}

/* Set up c for graph g: its index, policy and bookkeeping. */
static int edit_start(bnf_edit *c, bnf_fold_run *run, Onnx__GraphProto *g, const char *gname, bnf_edit *parent,
		      int opset, bool in_function)
{
	const bnf_fold_options *opt = run->opt;
	size_t max_new = opt->max_new_bytes ? opt->max_new_bytes : BNF_MAX_NEW_BYTES;

	memset(c, 0, sizeof(*c));
	c->g = g;
	c->is_subgraph = parent != NULL;
	c->in_function = in_function;
	c->parent = parent;
	c->run = run;
	c->path = run->path;
	c->res = run->res;
	if (bnf_graph_build(&c->gi, g, parent ? &parent->gi : NULL, run->path, run->ir, opset, opt->fold_overridable,
			    run->fail) < 0)
		return -1;
	if (g == run->model->graph &&
	    bnf_graph_add_training(&c->gi, run->model->training_info, run->model->n_training_info) < 0)
		return bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
	c->pl = opt->payloads;
	c->gi.payloads = opt->payloads;
	c->gi.is_function = in_function;
	c->gi.eval_max_bytes = max_new; /* a value computed from constants is a new tensor too */
	c->gi.eval_spend = &run->eval_spend; /* and all of them together are bounded per run */
	/* With the payloads known, constants resolve for the shapes' lists. */
	if (bnf_shapes_infer(&c->gi) < 0)
		return -1;
	c->pol.defer_scan = opt->defer_scan;
	c->pol.new_bytes_left = max_new > run->res->new_bytes ? max_new - run->res->new_bytes : 0;
	c->init_cap = g->n_initializer + 1;
	c->node_removed = calloc(g->n_node + 1, sizeof(bool));
	c->init_removed = calloc(c->init_cap, sizeof(bool));
	if (!(c->gname = bnf_strdup(gname)) || !c->node_removed || !c->init_removed)
		return bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
	return 0;
}

static void edit_end(bnf_edit *c)
{
	bnf_graph_free(&c->gi);
	free(c->node_removed);
	free(c->init_removed);
	free(c->gname);
	bnf_strlist_free(&c->released);
	bnf_strlist_free(&c->killed);
	bnf_strlist_free(&c->drop_inputs);
}

static int fold_graph(bnf_fold_run *run, Onnx__GraphProto *g, const char *gname, bnf_edit *parent, int opset,
		      bool in_function)
{
	bnf_edit c;
	bool *handled = NULL, progress = true;
	int rc = -1;

	if (edit_start(&c, run, g, gname, parent, opset, in_function) < 0)
		goto out;
	if (!(handled = calloc(g->n_node + 1, sizeof(bool)))) {
		bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
		goto out;
	}
	for (size_t n = 0; n < g->n_node; n++)
		if (bnf_node_is_onnx(g->node[n], bnf_op_type(BNF_OP_BN)))
			run->res->bn_found++;
	/* Fold until nothing more folds: a fold can make the next one possible
	 * (BN after BN, Add before BN).  Producers come first in gi.order, so one
	 * pass folds a chain and the second finds nothing left. */
	while (progress) {
		progress = false;
		for (size_t k = 0; k < g->n_node; k++) {
			size_t n = c.gi.order[k];
			if (!c.node_removed[n] && !handled[n] && fold_node(&c, n, &handled[n], &progress) < 0)
				goto out;
		}
	}
	if (record_skips(&c, handled) < 0)
		goto out;
	if (bnf_edit_sweep(&c) < 0) {
		bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
		goto out;
	}
	if (fold_subgraphs(&c) < 0)
		goto out;
	/* Folds in subgraphs may have left names of this graph without a reader. */
	if (bnf_edit_sweep(&c) < 0) {
		bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
		goto out;
	}
	bnf_edit_compact(&c);
	rc = 0;
out:
	edit_end(&c);
	free(handled);
	return rc;
}

/* The default-domain opset imported by a list, or def. */
static int default_opset(Onnx__OperatorSetIdProto *const *imports, size_t n, int def)
{
	for (size_t i = 0; i < n; i++) {
		const char *d = imports[i]->domain;
		if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && imports[i]->has_version)
			def = (int)imports[i]->version;
	}
	return def;
}

/* Fold the BNs of a function body (ModelProto.functions) like a graph whose
 * inputs are the function's inputs.  A body has no initializers: a fold is
 * made only when it can edit Constant nodes in place, else the BN is
 * reported (unsupported_storage).  Editing the body is right for every
 * call, since the BN and its layer are both in it. */
static int fold_function(bnf_fold_run *run, Onnx__FunctionProto *f, int model_opset)
{
	size_t n_io = f->n_input + f->n_output;
	Onnx__ValueInfoProto *vi = calloc(n_io + 1, sizeof(*vi));
	Onnx__ValueInfoProto **io = calloc(n_io + 1, sizeof(*io));
	Onnx__GraphProto g;
	char *gname = bnf_asprintf("function %s%s%s", f->domain && f->domain[0] ? f->domain : "",
				   f->domain && f->domain[0] ? "." : "", f->name ? f->name : "");
	int rc = -1;

	if (!vi || !io || !gname) {
		bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
		goto out;
	}
	/* A graph that borrows the body's nodes and names; its inputs and
	 * outputs carry only names. */
	for (size_t i = 0; i < n_io; i++) {
		onnx__value_info_proto__init(&vi[i]);
		vi[i].name = i < f->n_input ? f->input[i] : f->output[i - f->n_input];
		io[i] = &vi[i];
	}
	onnx__graph_proto__init(&g);
	g.name = f->name;
	g.n_node = f->n_node;
	g.node = f->node;
	g.n_input = f->n_input;
	g.input = io;
	g.n_output = f->n_output;
	g.output = io + f->n_input;
	if (bnf_graph_collect_names(&run->names, &g) < 0) {
		bnf_fail(run->fail, BNFOLD_E_NOMEM, "%s: out of memory", run->path);
		goto out;
	}
	rc = fold_graph(run, &g, gname, NULL, default_opset(f->opset_import, f->n_opset_import, model_opset), true);
	f->n_node = g.n_node; /* folded nodes were removed from the same array */
out:
	free(vi);
	free(io);
	free(gname);
	return rc;
}

int bnf_fold_model(Onnx__ModelProto *m, const char *path, const bnf_fold_options *opt,
		   bnf_result *res, bnf_err *fail)
{
	int opset = -1, rc;
	bnf_fold_run run;

	memset(res, 0, sizeof(*res));
	memset(&run, 0, sizeof(run));
	opset = default_opset(m->opset_import, m->n_opset_import, -1);
	res->fold_overridable = opt->fold_overridable;
	res->verify = !opt->no_verify;
	res->tolerance_set = opt->tolerance_set;
	res->tolerance = opt->tolerance;
	res->ir_version = m->has_ir_version ? m->ir_version : 0;
	res->opset = opset;
	res->producer_name = bnf_strdup(m->producer_name ? m->producer_name : "");
	res->producer_version = bnf_strdup(m->producer_version ? m->producer_version : "");
	if (!res->producer_name || !res->producer_version)
		return bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
	if (!m->graph)
		return bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: the model has no graph", path);
	if (opset < 0)
		opset = 1; /* no default-domain import: the oldest rules apply */
	if (bnf_op_counts_add(&res->ops, m, false, &res->nodes_before) < 0)
		return bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
	run.path = path;
	run.fail = fail;
	run.ir = (int)res->ir_version;
	run.opt = opt;
	run.res = res;
	run.model = m;
	rc = bnf_graph_collect_names(&run.names, m->graph);
	for (size_t i = 0; rc == 0 && i < m->n_training_info; i++) {
		const Onnx__TrainingInfoProto *t = m->training_info[i];
		if ((t->initialization && bnf_graph_collect_names(&run.names, t->initialization) < 0) ||
		    (t->algorithm && bnf_graph_collect_names(&run.names, t->algorithm) < 0))
			rc = -1;
	}
	if (rc < 0) {
		bnf_graph_free(&run.names);
		return bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
	}
	rc = fold_graph(&run, m->graph, m->graph->name && m->graph->name[0] ? m->graph->name : "main", NULL, opset,
			false);
	for (size_t i = 0; rc == 0 && i < m->n_functions; i++)
		rc = fold_function(&run, m->functions[i], opset);
	bnf_graph_free(&run.names);
	if (rc < 0)
		return -1;
	if (bnf_op_counts_add(&res->ops, m, true, &res->nodes_after) < 0)
		return bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
	return 0;
}
