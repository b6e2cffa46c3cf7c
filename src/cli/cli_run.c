#include "cli_run.h"
#include "graph.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "model_read.h"
#include "model_write.h"
#include "outfile.h"
#include "report.h"
#include "result.h"
#include "signals.h"
#include "tensor.h"

/* --- output names --- */

char *bnf_run_output_path(const bnf_run_options *o, const char *input)
{
	size_t n = strlen(input);

	if (o->in_place)
		return bnf_strdup(input);
	if (o->output)
		return bnf_strdup(o->output);
	if (strcmp(input, "-") == 0)
		return bnf_strdup("-");
	if (o->out_dir) {
		const char *slash = strrchr(input, '/');
		const char *base = slash ? slash + 1 : input;
		size_t d = strlen(o->out_dir);
		while (d > 1 && o->out_dir[d - 1] == '/') /* "out/" + "m.onnx", not "out//m.onnx" */
			d--;
		return bnf_asprintf("%.*s%s%s", (int)d, o->out_dir, o->out_dir[d - 1] == '/' ? "" : "/", base);
	}
	if (n > 5 && strcmp(input + n - 5, ".onnx") == 0)
		n -= 5;
	return bnf_asprintf("%.*s.folded.onnx", (int)n, input);
}

int bnf_run_check_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return bnf_error("%s: cannot use as output directory: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bnf_error("%s: not a directory", dir);
	return 0;
}

/* --- lines on stderr --- */

/* " (reason n, reason n)" for the skips of r, or "" */
static void reason_counts(const bnf_result *r, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int k = 0; k < BNF_REASON_COUNT; k++) {
		size_t n = 0;
		for (size_t i = 0; i < r->n_skips; i++)
			n += r->skips[i].reason == (bnf_reason)k;
		if (n && used < size) {
			int w = snprintf(buf + used, size - used, "%s%s %zu", used ? ", " : " (",
					 bnf_reason_code((bnf_reason)k), n);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	if (used && used < size - 1)
		strcat(buf, ")");
}

static void fold_summary(const bnf_result *r, const char *input, const char *output)
{
	char reasons[512];

	reason_counts(r, reasons, sizeof(reasons));
	bnf_info(1, "bnfold: %s -> %s: folded %zu of %zu BatchNormalization, skipped %zu%s; nodes %zu -> %zu",
		 input, output, bnf_result_bn_folded(r), r->bn_found, r->n_skips, reasons, r->nodes_before,
		 r->nodes_after);
	if (r->n_fusions > bnf_result_bn_folded(r))
		bnf_info(1, "bnfold: %s: also folded %zu per-channel Mul/Add into the layer before them", input,
			 r->n_fusions - bnf_result_bn_folded(r));
	for (size_t i = 0; i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		char check[160] = "";
		if (f->verified)
			snprintf(check, sizeof(check), "; verify max_rel_err %.2e <= %.2e, max_abs_err %.2e, %zu outputs",
				 f->verify.max_rel_err, f->verify.tolerance, f->verify.max_abs_err, f->verify.outputs);
		bnf_info(2, "  folded   %s '%s' <- %s '%s' (%s, %s, %zu channels, %s%s%s%s)", f->layer_op, f->layer,
			 f->node_op, f->bn, f->pattern, f->graph, f->channels, bnf_dtype_name(f->dtype),
			 f->weight_copied ? ", weight copied" : "", f->bias_created ? ", bias added" : "", check);
	}
	for (size_t i = 0; i < r->n_skips; i++) {
		const bnf_skip *s = &r->skips[i];
		bnf_info(2, "  skipped  BatchNormalization '%s' (output '%s', %s): %s: %s", s->bn, s->bn_output,
			 s->graph, bnf_reason_code(s->reason), s->message);
	}
}

/* The fusion, for messages: "BatchNormalization 'bn' (output 'y') folded into Conv 'conv'". */
static void fusion_name(const bnf_fusion *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s '%s' (output '%s') folded into %s '%s'", f->node_op, f->bn, f->bn_output, f->layer_op,
		 f->layer);
}

static void verify_message(const bnf_fusion *f, char *buf, size_t len)
{
	char name[600];
	const bnf_verify *v = &f->verify;
	fusion_name(f, name, sizeof(name));
	if (v->problem)
		snprintf(buf, len, "%s cannot be verified: %s", name, v->problem);
	else
		snprintf(buf, len, "%s fails verification: max_rel_err %.3g > tolerance %.3g (max_abs_err %.3g, channel %zu)",
			 name, v->max_rel_err, v->tolerance, v->max_abs_err, v->worst_channel);
}

/* One error line naming the fusion furthest over its tolerance (with -v,
 * every failing fusion first). */
static void verify_failures(const bnf_result *r, const char *input)
{
	const bnf_fusion *worst = NULL;
	double worst_ratio = -1;
	size_t n = bnf_result_verify_failed(r);
	char msg[1200];

	for (size_t i = 0; i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		double ratio;
		if (!f->verified || f->verify.ok)
			continue;
		ratio = f->verify.problem ? INFINITY : f->verify.max_rel_err / f->verify.tolerance;
		if (isnan(ratio))
			ratio = INFINITY;
		if (!worst || ratio > worst_ratio) {
			worst = f;
			worst_ratio = ratio;
		}
		verify_message(f, msg, sizeof(msg));
		bnf_info(2, "  not verified  %s", msg);
	}
	if (!worst)
		return;
	verify_message(worst, msg, sizeof(msg));
	if (n > 1)
		bnf_error("%s: %s; %zu fusions fail (-v lists them); nothing written", input, msg, n);
	else
		bnf_error("%s: %s; nothing written", input, msg);
}

/* The CI gate's findings: one line per BN that would fold, "FILE: ..." so
 * that they read like a compiler's diagnostics. */
static void check_lines(const bnf_result *r, const char *input, bool each)
{
	char reasons[512];

	for (size_t i = 0; each && i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		bnf_info(1, "%s: foldable %s '%s' <- %s '%s' (%s, %s, %zu channels, %s)", input,
			 f->layer_op, f->layer, f->node_op, f->bn, f->pattern, f->graph, f->channels,
			 bnf_dtype_name(f->dtype));
	}
	for (size_t i = 0; each && i < r->n_skips; i++) {
		const bnf_skip *s = &r->skips[i];
		bnf_info(2, "%s: skipped BatchNormalization '%s' (output '%s', %s): %s: %s", input, s->bn,
			 s->bn_output, s->graph, bnf_reason_code(s->reason), s->message);
	}
	reason_counts(r, reasons, sizeof(reasons));
	bnf_info(1, "bnfold: %s: foldable %zu of %zu BatchNormalization, skipped %zu%s", input,
		 bnf_result_bn_folded(r), r->bn_found, r->n_skips, reasons);
}

/* --- the inspection table --- */

typedef struct strvec {
	char **v;
	size_t n, cap;
} strvec;

static int strvec_push(strvec *s, char *p)
{
	if (!p)
		return -1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			free(p);
			return -1;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = p;
	return 0;
}

static void strvec_free(strvec *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Output names of the BatchNormalization nodes in file order, a subgraph's
 * where its node appears, so the table follows the model as written. */
static int bn_order(const Onnx__GraphProto *g, strvec *out)
{
	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];
		if (n->op_type && strcmp(n->op_type, "BatchNormalization") == 0 && n->n_output > 0 &&
		    strvec_push(out, bnf_strdup(n->output[0])) < 0)
			return -1;
		for (size_t a = 0; a < n->n_attribute; a++) {
			const Onnx__AttributeProto *at = n->attribute[a];
			if (at->g && bn_order(at->g, out) < 0)
				return -1;
			for (size_t k = 0; k < at->n_graphs; k++)
				if (bn_order(at->graphs[k], out) < 0)
					return -1;
		}
	}
	return 0;
}

typedef struct row {
	size_t order;
	const bnf_fusion *f;
	const bnf_skip *s;
} row;

static int row_cmp(const void *a, const void *b)
{
	const row *x = a, *y = b;
	return (x->order > y->order) - (x->order < y->order);
}

enum { COL_LAYER, COL_BN, COL_PATTERN, COL_CHANNELS, COL_DTYPE, COL_ACTION, COL_REASON, COL_DETAILS, NCOL };
static const char *const col_names[NCOL] = {"LAYER", "BN", "PATTERN", "CHANNELS", "DTYPE", "ACTION", "REASON", "DETAILS"};

/* Characters, not bytes, so that UTF-8 names line up. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

/* A node's name for the table; an unnamed node is shown by what it is. */
static char *shown(const char *name, const char *unnamed_what, const char *unnamed_output)
{
	if (!name)
		return bnf_strdup("-");
	if (name[0])
		return bnf_strdup(name);
	if (unnamed_output)
		return bnf_asprintf("(output %s)", unnamed_output);
	return bnf_asprintf("(unnamed %s)", unnamed_what);
}

static char *fusion_details(const bnf_fusion *f)
{
	return bnf_asprintf("graph '%s', output '%s', %s, epsilon %g, weight '%s'%s, bias '%s'%s", f->graph,
			    f->bn_output, f->layer_op, f->eps, f->weight, f->weight_copied ? " (copied)" : "",
			    f->bias, f->bias_created ? " (added)" : "");
}

static char *skip_details(const bnf_skip *s)
{
	return bnf_asprintf("graph '%s', output '%s': %s", s->graph, s->bn_output, s->message);
}

/* The table of every BN on stdout: fold rows and skip rows in model order,
 * columns padded to their widest cell; -v adds a DETAILS column. */
static int list_table(const bnf_result *r, const strvec *order, const char *input, bool heading)
{
	size_t nrows = r->n_fusions + r->n_skips, ncol = bnf_display_level >= 2 ? NCOL : NCOL - 1;
	size_t width[NCOL] = {0};
	bool *used = calloc(order->n + 1, sizeof(*used));
	row *rows = calloc(nrows + 1, sizeof(*rows));
	char **cells = calloc((nrows + 1) * NCOL, sizeof(*cells));
	int rc = -1;

	if (!used || !rows || !cells)
		goto out;
	for (size_t i = 0; i < nrows; i++) {
		row *w = &rows[i];
		const char *out_name;
		if (i < r->n_fusions)
			w->f = &r->fusions[i];
		else
			w->s = &r->skips[i - r->n_fusions];
		out_name = w->f ? w->f->bn_output : w->s->bn_output;
		w->order = order->n + i; /* not found: after the others, as reported */
		for (size_t k = 0; k < order->n; k++)
			if (!used[k] && strcmp(order->v[k], out_name) == 0) {
				used[k] = true;
				w->order = k;
				break;
			}
	}
	qsort(rows, nrows, sizeof(*rows), row_cmp);

	for (size_t c = 0; c < NCOL; c++)
		cells[c] = bnf_strdup(col_names[c]);
	for (size_t i = 0; i < nrows; i++) {
		char **cl = &cells[(i + 1) * NCOL];
		const bnf_fusion *f = rows[i].f;
		const bnf_skip *s = rows[i].s;
		cl[COL_LAYER] = shown(f ? f->layer : s->layer, f ? f->layer_op : "layer", NULL);
		cl[COL_BN] = shown(f ? f->bn : s->bn, f ? f->node_op : "BatchNormalization", f ? f->bn_output : s->bn_output);
		cl[COL_PATTERN] = bnf_strdup(f ? f->pattern : "-");
		cl[COL_CHANNELS] = f ? bnf_asprintf("%zu", f->channels) : bnf_strdup("-");
		cl[COL_DTYPE] = bnf_strdup(f ? bnf_dtype_name(f->dtype) : "-");
		cl[COL_ACTION] = bnf_strdup(f ? "fold" : "skip");
		cl[COL_REASON] = bnf_strdup(f ? "-" : bnf_reason_code(s->reason));
		cl[COL_DETAILS] = f ? fusion_details(f) : skip_details(s);
	}
	for (size_t i = 0; i < (nrows + 1) * NCOL; i++)
		if (!cells[i])
			goto out;
	for (size_t i = 0; i <= nrows; i++)
		for (size_t c = 0; c < ncol; c++) {
			size_t w = text_width(cells[i * NCOL + c]);
			width[c] = w > width[c] ? w : width[c];
		}

	if (heading)
		printf("%s:\n", input);
	for (size_t i = 0; i <= nrows; i++) {
		for (size_t c = 0; c < ncol; c++) {
			const char *cell = cells[i * NCOL + c];
			size_t pad = width[c] - text_width(cell);
			if (c == COL_CHANNELS) /* numbers to the right */
				printf("%*s%s", (int)pad, "", cell);
			else if (c == ncol - 1)
				fputs(cell, stdout);
			else
				printf("%s%*s", cell, (int)pad, "");
			if (c != ncol - 1)
				fputs("  ", stdout);
		}
		putchar('\n');
	}
	rc = 0;
out:
	if (cells)
		for (size_t i = 0; i < (nrows + 1) * NCOL; i++)
			free(cells[i]);
	free(cells);
	free(rows);
	free(used);
	if (rc < 0)
		bnf_error("%s: out of memory printing the table", input);
	return rc;
}

/* --- the report --- */

static int report_add(bnf_run *run, const bnf_run_options *o, const char *text)
{
	size_t n = strlen(text), need;

	if (!bnf_add_size(run->report_len, n + 2, &need))
		return -1;
	if (need > run->report_cap) {
		size_t cap = need > 2 * run->report_cap ? need : 2 * run->report_cap;
		char *p = realloc(run->report, cap);
		if (!p)
			return -1;
		run->report = p;
		run->report_cap = cap;
	}
	for (const char *s = text; *s; s++) {
		/* JSON forbids raw control characters inside strings, so every raw
		 * newline or tab is layout: dropping them leaves one line per input. */
		if (o->report_lines && (*s == '\n' || *s == '\t'))
			continue;
		run->report[run->report_len++] = *s;
	}
	run->report[run->report_len++] = '\n';
	run->report[run->report_len] = '\0';
	return 0;
}

/* --- one input --- */

/* The model's size with its external data files. */
static size_t input_bytes(const bnf_input *in)
{
	size_t n = in->len;
	for (size_t i = 0; i < in->payloads.n_srcs; i++)
		if (in->payloads.srcs[i]->external)
			n += in->payloads.srcs[i]->len;
	return n;
}

/* Whether output is written through a temp file (a regular file, or a new one). */
static bool regular_output(const char *output)
{
	struct stat st;
	return strcmp(output, "-") != 0 && (stat(output, &st) != 0 || S_ISREG(st.st_mode));
}

/* A regular (non-empty) input is read through mappings: if it shrinks
 * meanwhile, the SIGBUS handler names it (signals.h). */
static void note_reading(const char *input)
{
	struct stat st;
	if (strcmp(input, "-") != 0 && stat(input, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		bnf_signals_reading(input);
}

int bnf_run_file(bnf_run *run, const bnf_run_options *o, const char *input)
{
	bnf_input in = {0};
	bnf_result res = {0};
	bnf_fold_options fold;
	bnf_output out;
	strvec order = {0};
	char *output = NULL, *report = NULL;
	bool writes = o->job == BNF_JOB_FOLD;
	/* Writing a model read from a file, the weights are first folded
	 * without the scan for NaN, Inf and overflow (bnf_fold_options
	 * .defer_scan); if scaling meets one, or a fusion fails verification,
	 * everything is done again with the scan, which decides. */
	bool defer = writes && strcmp(input, "-") != 0;
	int rc = -1;

	run->files++;
	if (writes) {
		struct stat st;
		bool derived = !o->output && !o->in_place && strcmp(input, "-") != 0;
		if (!(output = bnf_run_output_path(o, input))) {
			bnf_error("%s: out of memory", input);
			goto done;
		}
		if (!o->in_place && bnf_same_file(input, output)) {
			bnf_error("%s: refusing to overwrite the input; use --in-place to replace it", output);
			goto done;
		}
		if (derived && !o->force && stat(output, &st) == 0) {
			bnf_error("%s: already exists; use -f to replace it%s", output,
				  o->out_dir ? "" : " or -o to choose another name");
			goto done;
		}
	}

again:
	note_reading(input);
	if (bnf_input_open(input, &in, !o->no_stream) < 0)
		goto done;
	fold = o->fold;
	fold.payloads = &in.payloads;
	fold.defer_scan = defer;
	/* Checks of weights read from the input run while the model is written,
	 * when a failure can still take the output back (a temp file). */
	fold.defer_verify = defer && regular_output(output);
	/* New weight tensors may take as much as the input, or the default cap. */
	fold.max_new_bytes = input_bytes(&in) > BNF_MAX_NEW_BYTES ? input_bytes(&in) : BNF_MAX_NEW_BYTES;
	if (o->job == BNF_JOB_LIST && bn_order(in.model->graph, &order) < 0) {
		bnf_error("%s: out of memory", input);
		goto done;
	}
	if (bnf_fold_model(in.model, input, &fold, &res) < 0)
		goto done;
	if (defer && (res.unscanned_nonfinite || bnf_result_verify_failed(&res) > 0)) {
		bnf_result_free(&res);
		bnf_input_close(&in);
		defer = false;
		goto again;
	}
	bnf_result_verify_start(&res);
	if (bnf_result_verify_failed(&res) > 0) {
		verify_failures(&res, input);
		run->verify_failed++;
		rc = 0; /* not an I/O failure: exit status 4 */
		goto done_verify;
	}
	if (o->job != BNF_JOB_FOLD && o->report && !(report = bnf_report_json(&res, input, output, &fold)))
		goto done;

	switch (o->job) {
	case BNF_JOB_FOLD:
		if (bnf_output_open(output, &out, bnf_signals_tempfile, NULL) < 0)
			goto done;
		out.no_sync = o->no_fsync;
		if ((res.n_fusions == 0 && !in.has_external ? bnf_output_write_input(&out, &in) /* unchanged, byte for byte */
							     : bnf_output_write_model(&out, in.model, &in.payloads, o->inline_all)) < 0) {
			bnf_output_abort(&out);
			goto done;
		}
		if (bnf_result_verify_finish(&res) < 0) {
			bnf_output_abort(&out);
			goto done;
		}
		if (defer && (out.nonfinite || bnf_result_verify_failed(&res) > 0)) {
			bnf_output_abort(&out);
			bnf_result_free(&res);
			bnf_input_close(&in);
			defer = false;
			goto again;
		}
		if (bnf_result_verify_failed(&res) > 0) { /* checked before writing when not deferred */
			bnf_output_abort(&out);
			verify_failures(&res, input);
			run->verify_failed++;
			rc = 0;
			goto done_verify;
		}
		if (o->report && !(report = bnf_report_json(&res, input, output, &fold))) {
			bnf_output_abort(&out);
			goto done;
		}
		if (bnf_output_commit(&out) < 0)
			goto done;
		fold_summary(&res, input, output);
		break;
	case BNF_JOB_CHECK:
		check_lines(&res, input, true);
		break;
	case BNF_JOB_LIST:
		if (bnf_display_level >= 1) {
			if (o->headings && run->tables)
				putchar('\n');
			if (list_table(&res, &order, input, o->headings) < 0)
				goto done;
			run->tables++;
		}
		check_lines(&res, input, false);
		break;
	}
	if (report && report_add(run, o, report) < 0)
		run->report_failed = true;
	run->bn_found += res.bn_found;
	run->folded += bnf_result_bn_folded(&res);
	run->files_foldable += bnf_result_bn_folded(&res) > 0;
	rc = 0;
done:
	if (rc < 0)
		run->failed++;
done_verify:
	strvec_free(&order);
	free(report);
	free(output);
	bnf_result_free(&res);
	bnf_input_close(&in);
	return rc;
}

void bnf_run_totals(const bnf_run *run, const bnf_run_options *o)
{
	char failed[64] = "";

	if (run->failed)
		snprintf(failed, sizeof(failed), "; %zu failed", run->failed);
	if (o->job == BNF_JOB_FOLD)
		bnf_info(1, "bnfold: %zu files: folded %zu of %zu BatchNormalization%s", run->files, run->folded,
			 run->bn_found, failed);
	else
		bnf_info(1, "bnfold: %zu files: foldable %zu of %zu BatchNormalization, in %zu file%s%s", run->files,
			 run->folded, run->bn_found, run->files_foldable, run->files_foldable == 1 ? "" : "s", failed);
}

int bnf_run_write_report(bnf_run *run, const char *path)
{
	if (run->report_failed)
		return bnf_error("%s: out of memory building the report", path);
	if (!run->report_len)
		return 0;
	return bnf_write_file(path, run->report, run->report_len, bnf_signals_tempfile, NULL);
}

void bnf_run_free(bnf_run *run)
{
	free(run->report);
	memset(run, 0, sizeof(*run));
}
