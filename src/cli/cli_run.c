#include "cli_run.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "messages.h"
#include "signals.h"

/* --- output names --- */

char *bnf_run_output_path(const bnf_run_options *o, const char *input)
{
	size_t n = strlen(input);

	if (o->in_place)
		return cli_strdup(input);
	if (o->output)
		return cli_strdup(o->output);
	if (strcmp(input, "-") == 0)
		return cli_strdup("-");
	if (o->out_dir) {
		const char *slash = strrchr(input, '/');
		const char *base = slash ? slash + 1 : input;
		size_t d = strlen(o->out_dir);
		while (d > 1 && o->out_dir[d - 1] == '/') /* "out/" + "m.onnx", not "out//m.onnx" */
			d--;
		return cli_asprintf("%.*s%s%s", (int)d, o->out_dir, o->out_dir[d - 1] == '/' ? "" : "/", base);
	}
	if (n > 5 && strcmp(input + n - 5, ".onnx") == 0)
		n -= 5;
	return cli_asprintf("%.*s.folded.onnx", (int)n, input);
}

int bnf_run_check_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return cli_error("%s: cannot use as output directory: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_error("%s: not a directory", dir);
	return 0;
}

/* --- lines on stderr --- */

/* " (reason n, reason n)" for the skips of r, or "" */
static void reason_counts(const bnfold_result *r, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < bnfold_reason_count(); k++) {
		const char *code = bnfold_reason_code(k);
		size_t n = 0;
		for (size_t i = 0; i < bnfold_result_n_skips(r); i++)
			n += bnfold_result_skip(r, i)->is_bn && strcmp(bnfold_result_skip(r, i)->reason, code) == 0;
		if (n && used < size) {
			int w = snprintf(buf + used, size - used, "%s%s %zu", used ? ", " : " (", code, n);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	if (used && used < size - 1)
		strcat(buf, ")");
}

static void fold_summary(const bnfold_result *r, const char *input, const char *output)
{
	char reasons[512];
	bnfold_counts n;

	bnfold_result_counts(r, &n);
	reason_counts(r, reasons, sizeof(reasons));
	cli_info(1, "bnfold: %s -> %s: folded %zu of %zu BatchNormalization, skipped %zu%s; nodes %zu -> %zu",
		 input, output, n.bn_folded, n.bn_found, n.skipped, reasons, n.nodes_before, n.nodes_after);
	if (n.affine_folded)
		cli_info(1, "bnfold: %s: also folded %zu per-channel Mul/Add into the layer before them", input,
			 n.affine_folded);
	for (size_t i = 0; i < bnfold_result_n_fusions(r); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(r, i);
		char check[160] = "";
		if (f->check.done)
			snprintf(check, sizeof(check), "; verify max_rel_err %.2e <= %.2e, max_abs_err %.2e, %zu outputs",
				 f->check.max_rel_err, f->check.tolerance, f->check.max_abs_err, f->check.outputs);
		cli_info(2, "  folded   %s '%s' <- %s '%s' (%s, %s, %zu channels, %s%s%s%s)", f->layer_op, f->layer,
			 f->node_op, f->node, f->pattern, f->graph, f->channels, f->dtype,
			 f->weight_copied ? ", weight copied" : "", f->bias_created ? ", bias added" : "", check);
	}
	for (size_t i = 0; i < bnfold_result_n_skips(r); i++) {
		const bnfold_skip *s = bnfold_result_skip(r, i);
		cli_info(2, "  skipped  %s '%s' (output '%s', %s): %s: %s", s->node_op, s->bn, s->bn_output,
			 s->graph, s->reason, s->message);
	}
}

/* The fusion, for messages: "BatchNormalization 'bn' (output 'y') folded into Conv 'conv'". */
static void fusion_name(const bnfold_fusion *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s '%s' (output '%s') folded into %s '%s'", f->node_op, f->node, f->node_output,
		 f->layer_op, f->layer);
}

static void verify_message(const bnfold_fusion *f, char *buf, size_t len)
{
	char name[600];
	const bnfold_check *v = &f->check;
	fusion_name(f, name, sizeof(name));
	if (v->problem)
		snprintf(buf, len, "%s cannot be verified: %s", name, v->problem);
	else
		snprintf(buf, len, "%s fails verification: max_rel_err %.3g > tolerance %.3g (max_abs_err %.3g, channel %zu)",
			 name, v->max_rel_err, v->tolerance, v->max_abs_err, v->worst_channel);
}

/* One error line naming the fusion furthest over its tolerance (with -v,
 * every failing fusion first). */
static void verify_failures(const bnfold_result *r, const char *input)
{
	const bnfold_fusion *worst = NULL;
	double worst_ratio = -1;
	bnfold_counts n;
	char msg[1200];

	bnfold_result_counts(r, &n);
	for (size_t i = 0; i < bnfold_result_n_fusions(r); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(r, i);
		double ratio;
		if (!f->check.done || f->check.ok)
			continue;
		ratio = f->check.problem ? INFINITY : f->check.max_rel_err / f->check.tolerance;
		if (isnan(ratio))
			ratio = INFINITY;
		if (!worst || ratio > worst_ratio) {
			worst = f;
			worst_ratio = ratio;
		}
		verify_message(f, msg, sizeof(msg));
		cli_info(2, "  not verified  %s", msg);
	}
	if (!worst)
		return;
	verify_message(worst, msg, sizeof(msg));
	if (n.verify_failed > 1)
		cli_error("%s: %s; %zu fusions fail (-v lists them); nothing written", input, msg, n.verify_failed);
	else
		cli_error("%s: %s; nothing written", input, msg);
}

/* The CI gate's findings: one line per BN that would fold, "FILE: ..." so
 * that they read like a compiler's diagnostics. */
static void check_lines(const bnfold_result *r, const char *input, bool each)
{
	char reasons[512];
	bnfold_counts n;

	bnfold_result_counts(r, &n);
	for (size_t i = 0; each && i < bnfold_result_n_fusions(r); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(r, i);
		cli_info(1, "%s: foldable %s '%s' <- %s '%s' (%s, %s, %zu channels, %s)", input, f->layer_op, f->layer,
			 f->node_op, f->node, f->pattern, f->graph, f->channels, f->dtype);
	}
	for (size_t i = 0; each && i < bnfold_result_n_skips(r); i++) {
		const bnfold_skip *s = bnfold_result_skip(r, i);
		cli_info(2, "%s: skipped %s '%s' (output '%s', %s): %s: %s", input, s->node_op, s->bn, s->bn_output,
			 s->graph, s->reason, s->message);
	}
	reason_counts(r, reasons, sizeof(reasons));
	cli_info(1, "bnfold: %s: foldable %zu of %zu BatchNormalization, skipped %zu%s", input, n.bn_folded,
		 n.bn_found, n.skipped, reasons);
}

/* --- the inspection table --- */

typedef struct row {
	size_t order;
	const bnfold_fusion *f;
	const bnfold_skip *s;
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
		return cli_strdup("-");
	if (name[0])
		return cli_strdup(name);
	if (unnamed_output)
		return cli_asprintf("(output %s)", unnamed_output);
	return cli_asprintf("(unnamed %s)", unnamed_what);
}

static char *fusion_details(const bnfold_fusion *f)
{
	return cli_asprintf("graph '%s', output '%s', %s, epsilon %g, weight '%s'%s, bias '%s'%s; shapes: %s", f->graph,
			    f->node_output, f->layer_op, f->epsilon, f->weight, f->weight_copied ? " (copied)" : "",
			    f->bias, f->bias_created ? " (added)" : "", f->shapes);
}

static char *skip_details(const bnfold_skip *s)
{
	return cli_asprintf("graph '%s', output '%s': %s; shapes: %s", s->graph, s->bn_output, s->message, s->shapes);
}

/* The rows of the table, in model order (a row whose BN is not found in
 * the model comes after the others, as reported). */
static row *table_rows(const bnfold_result *r, size_t nrows)
{
	size_t nf = bnfold_result_n_fusions(r);
	row *rows = calloc(nrows + 1, sizeof(*rows));
	if (!rows)
		return NULL;
	for (size_t i = 0; i < nrows; i++) {
		row *w = &rows[i];
		size_t order;
		if (i < nf) {
			w->f = bnfold_result_fusion(r, i);
			order = w->f->model_order;
		} else {
			w->s = bnfold_result_skip(r, i - nf);
			order = w->s->model_order;
		}
		w->order = order != SIZE_MAX ? order : SIZE_MAX / 2 + i;
	}
	qsort(rows, nrows, sizeof(*rows), row_cmp);
	return rows;
}

/* The cells of the table: a heading row, then one per row. */
static char **table_cells(const row *rows, size_t nrows)
{
	char **cells = calloc((nrows + 1) * NCOL, sizeof(*cells));
	if (!cells)
		return NULL;
	for (size_t c = 0; c < NCOL; c++)
		cells[c] = cli_strdup(col_names[c]);
	for (size_t i = 0; i < nrows; i++) {
		char **cl = &cells[(i + 1) * NCOL];
		const bnfold_fusion *f = rows[i].f;
		const bnfold_skip *s = rows[i].s;
		cl[COL_LAYER] = shown(f ? f->layer : s->layer, f ? f->layer_op : "layer", NULL);
		cl[COL_BN] = shown(f ? f->node : s->bn, f ? f->node_op : s->node_op, f ? f->node_output : s->bn_output);
		cl[COL_PATTERN] = cli_strdup(f ? f->pattern : "-");
		cl[COL_CHANNELS] = f ? cli_asprintf("%zu", f->channels) : cli_strdup("-");
		cl[COL_DTYPE] = cli_strdup(f ? f->dtype : "-");
		cl[COL_ACTION] = cli_strdup(f ? "fold" : "skip");
		cl[COL_REASON] = cli_strdup(f ? "-" : s->reason);
		cl[COL_DETAILS] = f ? fusion_details(f) : skip_details(s);
	}
	return cells;
}

/* Print the cells, columns padded to their widest cell. */
static void print_table(char **cells, size_t nrows, size_t ncol)
{
	size_t width[NCOL] = {0};

	for (size_t i = 0; i <= nrows; i++)
		for (size_t c = 0; c < ncol; c++) {
			size_t w = text_width(cells[i * NCOL + c]);
			width[c] = w > width[c] ? w : width[c];
		}
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
}

/* The table of every BN on stdout: fold rows and skip rows in model order;
 * -v adds a DETAILS column. */
static int list_table(const bnfold_result *r, const char *input, bool heading)
{
	size_t nrows = bnfold_result_n_fusions(r) + bnfold_result_n_skips(r);
	size_t ncol = cli_display_level >= 2 ? NCOL : NCOL - 1;
	row *rows = table_rows(r, nrows);
	char **cells = rows ? table_cells(rows, nrows) : NULL;
	int rc = -1;

	for (size_t i = 0; cells && i < (nrows + 1) * NCOL; i++)
		if (!cells[i])
			goto out;
	if (!cells)
		goto out;
	if (heading)
		printf("%s:\n", input);
	print_table(cells, nrows, ncol);
	rc = 0;
out:
	if (cells)
		for (size_t i = 0; i < (nrows + 1) * NCOL; i++)
			free(cells[i]);
	free(cells);
	free(rows);
	if (rc < 0)
		cli_error("%s: out of memory printing the table", input);
	return rc;
}

/* --- the report --- */

static const char *job_name(bnf_job job)
{
	return job == BNF_JOB_FOLD ? "fold" : job == BNF_JOB_CHECK ? "check" : "list";
}

/* Add input's entry to the report (made at the first input): its result,
 * or with code the error line just printed.  Running out of memory here
 * is reported once, when the report is written. */
static void report_input(bnf_run *run, const bnf_run_options *o, const char *input, bnfold_result *res,
			 const char *code, int exit_status)
{
	if (!o->report || run->report_failed)
		return;
	if (!run->report && !(run->report = cli_report_new(job_name(o->job), &o->lib)))
		run->report_failed = true;
	else if (cli_report_add(run->report, input, res, code, exit_status, code ? cli_last_error() : NULL) < 0)
		run->report_failed = true;
}

/* --- one input --- */

/* Where the folded model of input goes, checked: not over the input, not
 * over an existing file unless -f.  NULL after an error. */
static char *fold_output(const bnf_run_options *o, const char *input)
{
	struct stat st;
	bool derived = !o->output && !o->in_place && strcmp(input, "-") != 0;
	char *output = bnf_run_output_path(o, input);

	if (!output) {
		cli_error("%s: out of memory", input);
		return NULL;
	}
	if (!o->in_place && cli_same_file(input, output)) {
		cli_error("%s: refusing to overwrite the input; use --in-place to replace it", output);
		free(output);
		return NULL;
	}
	if (derived && !o->force && stat(output, &st) == 0) {
		cli_error("%s: already exists; use -f to replace it%s", output, o->out_dir ? "" : " or -o to choose another name");
		free(output);
		return NULL;
	}
	return output;
}

/* A regular (non-empty) input is read through mappings: if it shrinks
 * meanwhile, the SIGBUS handler names it (signals.h). */
static void note_reading(const char *input)
{
	struct stat st;
	if (strcmp(input, "-") != 0 && stat(input, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		bnf_signals_reading(input);
}

/* Print what the job found for one input. */
static int job_lines(bnf_run *run, const bnf_run_options *o, const bnfold_result *res, const char *input,
		     const char *output)
{
	switch (o->job) {
	case BNF_JOB_FOLD:
		fold_summary(res, input, output);
		break;
	case BNF_JOB_CHECK:
		check_lines(res, input, true);
		break;
	case BNF_JOB_LIST:
		if (cli_display_level >= 1) {
			if (o->headings && run->tables)
				putchar('\n');
			if (list_table(res, input, o->headings) < 0)
				return -1;
			run->tables++;
		}
		check_lines(res, input, false);
		break;
	}
	return 0;
}

int bnf_run_file(bnf_run *run, const bnf_run_options *o, const char *input)
{
	bnfold_result *res = NULL;
	bnfold_error err;
	bnfold_options lib = o->lib;
	bnfold_counts n;
	bnfold_status st;
	const char *code = "refused"; /* the report's error code, should this input fail */
	char *output = NULL;
	int rc = -1;

	run->files++;
	if (o->job == BNF_JOB_FOLD && !(output = fold_output(o, input)))
		goto done;
	lib.replace_input = o->in_place;
	note_reading(input);
	st = o->job == BNF_JOB_FOLD ? bnfold_fold_file(input, output, &lib, &res, &err)
				    : bnfold_inspect_file(input, &lib, &res, &err);
	code = bnfold_status_name(st);
	if (st == BNFOLD_E_VERIFY) {
		if (res)
			verify_failures(res, input);
		else
			cli_error("%s", err.message);
		run->verify_failed++;
		report_input(run, o, input, res, code, 4);
		rc = 0; /* not an I/O failure: exit status 4 */
		goto verify_failed;
	}
	if (st != BNFOLD_OK) {
		cli_error("%s", err.message);
		goto done;
	}
	code = "out_of_memory"; /* all that can fail from here on */
	if (job_lines(run, o, res, input, output) < 0)
		goto done;
	report_input(run, o, input, res, NULL, 0);
	bnfold_result_counts(res, &n);
	run->bn_found += n.bn_found;
	run->folded += n.bn_folded;
	run->files_foldable += n.bn_folded > 0;
	rc = 0;
done:
	if (rc < 0) {
		run->failed++;
		report_input(run, o, input, NULL, code, 1);
	}
verify_failed:
	free(output);
	bnfold_result_free(res);
	return rc;
}

void bnf_run_totals(const bnf_run *run, const bnf_run_options *o)
{
	char failed[64] = "";

	if (run->failed)
		snprintf(failed, sizeof(failed), "; %zu failed", run->failed);
	if (o->job == BNF_JOB_FOLD)
		cli_info(1, "bnfold: %zu files: folded %zu of %zu BatchNormalization%s", run->files, run->folded,
			 run->bn_found, failed);
	else
		cli_info(1, "bnfold: %zu files: foldable %zu of %zu BatchNormalization, in %zu file%s%s", run->files,
			 run->folded, run->bn_found, run->files_foldable, run->files_foldable == 1 ? "" : "s", failed);
}

int bnf_run_write_report(bnf_run *run, const bnf_run_options *o, const char *path)
{
	bnfold_error err;
	char *text = NULL;
	int rc = 0;

	if (run->report_failed || !run->report || !(text = cli_report_text(run->report)))
		rc = cli_error("%s: out of memory building the report", path);
	else if (bnfold_write_file(path, text, strlen(text), &o->lib, &err) != BNFOLD_OK)
		rc = cli_error("%s", err.message);
	free(text);
	return rc;
}

void bnf_run_free(bnf_run *run)
{
	cli_report_free(run->report);
	memset(run, 0, sizeof(*run));
}
