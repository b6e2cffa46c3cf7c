#include "cli_run.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_table.h"
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
	if (stat(dir, &st) < 0 && errno == ENOENT && mkdir(dir, 0777) < 0 && errno != EEXIST)
		return cli_error("%s: cannot create the output directory: %s", dir, strerror(errno));
	if (stat(dir, &st) < 0)
		return cli_error("%s: cannot use as output directory: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_error("%s: not a directory", dir);
	return 0;
}

/* --- lines on stderr --- */

/* A node for people: 'NAME', or the library's label for a node without a
 * name, "(unnamed OP, output TENSOR)". */
static const char *who(char *buf, size_t len, const char *name, const char *label)
{
	if (name && name[0]) {
		snprintf(buf, len, "'%s'", name);
		return buf;
	}
	return label ? label : "-";
}

/* "1 channel", "8 channels" */
static const char *channels(char *buf, size_t len, size_t n)
{
	snprintf(buf, len, "%zu channel%s", n, n == 1 ? "" : "s");
	return buf;
}

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

/* "Conv 'conv' <- BatchNormalization 'bn' (conv_bn, main, 8 channels, float32" */
static void fusion_line(const bnfold_fusion *f, char *buf, size_t len)
{
	char l[300], n[300], c[40];
	snprintf(buf, len, "%s %s <- %s %s (%s, %s, %s, %s", f->layer_op, who(l, sizeof(l), f->layer, f->layer_label),
		 f->node_op, who(n, sizeof(n), f->node, f->node_label), f->pattern, f->graph,
		 channels(c, sizeof(c), f->channels), f->dtype);
}

/* "BatchNormalization 'bn' (output 'y', main): reason: message" */
static void skip_line(const bnfold_skip *s, char *buf, size_t len)
{
	char n[300];
	snprintf(buf, len, "%s %s (output '%s', %s): %s: %s", s->node_op, who(n, sizeof(n), s->bn, s->bn_label),
		 s->bn_output, s->graph, s->reason, s->message);
}

static void fold_summary(const bnfold_result *r, const char *input, const char *output, bool stats)
{
	char reasons[512], line[1600];
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
		fusion_line(f, line, sizeof(line));
		cli_info(2, "  folded   %s%s%s%s)", line, f->weight_copied ? ", weight copied" : "",
			 f->bias_created ? ", bias added" : "", check);
	}
	for (size_t i = 0; i < bnfold_result_n_skips(r); i++) {
		skip_line(bnfold_result_skip(r, i), line, sizeof(line));
		cli_info(2, "  skipped  %s", line);
	}
	cli_stats_table(r, input, stats ? 1 : 2, true);
}

/* The fusion, for messages: "BatchNormalization 'bn' (output 'y') folded into Conv 'conv'". */
static void fusion_name(const bnfold_fusion *f, char *buf, size_t len)
{
	char l[300], n[300];
	/* a name past the buffer is cut: the line stays one line */
	if (snprintf(buf, len, "%s %s (output '%s') folded into %s %s", f->node_op,
		     who(n, sizeof(n), f->node, f->node_label), f->node_output, f->layer_op,
		     who(l, sizeof(l), f->layer, f->layer_label)) < 0)
		buf[0] = '\0';
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

/* True when over (the same model inspected with --fold-overridable) folds
 * the BatchNormalization that s left: it was left only because its
 * parameters are graph inputs. */
static bool folds_when_overridable(const bnfold_skip *s, const bnfold_result *over)
{
	if (!over || !s->is_bn || strcmp(s->reason, "param_is_graph_input") != 0)
		return false;
	for (size_t i = 0; i < bnfold_result_n_fusions(over); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(over, i);
		bool same = s->model_order != SIZE_MAX ? f->model_order == s->model_order
						       : strcmp(f->graph, s->graph) == 0 && strcmp(f->node_output, s->bn_output) == 0;
		if (same && f->is_bn)
			return !f->check.done || f->check.ok;
	}
	return false;
}

/* The CI gate's findings, "FILE: ..." so that they read like a compiler's
 * diagnostics: one line per BN that would fold; one per BN left that
 * --fold-overridable folds (over: the model inspected with it, or NULL);
 * with strict, one per BN left, whatever its reason; the others with -v.
 * each false prints the summary alone. */
static void check_lines(const bnfold_result *r, const bnfold_result *over, const char *input, bool each, bool strict)
{
	char reasons[512], line[1600], more[96] = "";
	size_t n_over = 0;
	bnfold_counts n;

	bnfold_result_counts(r, &n);
	for (size_t i = 0; each && i < bnfold_result_n_fusions(r); i++) {
		fusion_line(bnfold_result_fusion(r, i), line, sizeof(line));
		cli_info(1, "%s: foldable %s)", input, line);
	}
	for (size_t i = 0; each && i < bnfold_result_n_skips(r); i++) {
		const bnfold_skip *s = bnfold_result_skip(r, i);
		bool overridable = folds_when_overridable(s, over);
		n_over += overridable;
		skip_line(s, line, sizeof(line));
		cli_info(overridable || (strict && s->is_bn) ? 1 : 2, "%s: skipped %s%s", input, line,
			 overridable ? "; --fold-overridable folds it" : "");
	}
	if (n_over)
		snprintf(more, sizeof(more), "; %zu more would fold with --fold-overridable", n_over);
	reason_counts(r, reasons, sizeof(reasons));
	cli_info(1, "bnfold: %s: foldable %zu of %zu BatchNormalization, skipped %zu%s%s", input, n.bn_folded,
		 n.bn_found, n.skipped, reasons, more);
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

/* The model at input inspected again with --fold-overridable, when --check
 * left BNs only because their parameters are graph inputs (a file can be
 * read twice, stdin cannot); NULL otherwise, or when that inspection fails. */
static bnfold_result *inspect_overridable(const bnf_run_options *o, const bnfold_result *res, const char *input)
{
	bnfold_options lib = o->lib;
	bnfold_result *over = NULL;
	bool any = false;

	for (size_t i = 0; i < bnfold_result_n_skips(res) && !any; i++)
		any = bnfold_result_skip(res, i)->is_bn && strcmp(bnfold_result_skip(res, i)->reason, "param_is_graph_input") == 0;
	if (!any || o->lib.fold_overridable || strcmp(input, "-") == 0)
		return NULL;
	lib.fold_overridable = true;
	if (bnfold_inspect_file(input, &lib, &over, NULL) != BNFOLD_OK && over) {
		bnfold_result_free(over);
		over = NULL;
	}
	return over;
}

/* Print what the job found for one input. */
static int job_lines(bnf_run *run, const bnf_run_options *o, const bnfold_result *res, const char *input,
		     const char *output)
{
	bnfold_result *over;

	switch (o->job) {
	case BNF_JOB_FOLD:
		fold_summary(res, input, output, o->stats);
		break;
	case BNF_JOB_CHECK:
		over = inspect_overridable(o, res, input);
		check_lines(res, over, input, true, o->strict);
		bnfold_result_free(over);
		cli_stats_table(res, input, o->stats ? 1 : 2, false);
		break;
	case BNF_JOB_LIST:
		if (cli_display_level >= 1) {
			if (o->headings && run->tables)
				putchar('\n');
			if (cli_list_table(res, input, o->headings) < 0)
				return -1;
			run->tables++;
		}
		check_lines(res, NULL, input, false, false);
		cli_stats_table(res, input, o->stats ? 1 : 2, false);
		break;
	}
	return 0;
}

bool bnf_run_is_output_name(const char *path)
{
	size_t n = strlen(path), k = strlen(".folded.onnx");
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	return n > k && strcmp(path + n - k, ".folded.onnx") == 0 && strlen(base) > k;
}

/* Inputs named as bnfold names its outputs are not folded again when the
 * output would be derived from their name (as gzip leaves NAME.gz): a
 * second run over a folder's models must not write NAME.folded.folded.onnx. */
static bool skip_own_output(bnf_run *run, const bnf_run_options *o, const char *input)
{
	if (o->job != BNF_JOB_FOLD || o->output || o->in_place || !bnf_run_is_output_name(input))
		return false;
	cli_info(1, "bnfold: %s: skipped: already a bnfold output (NAME.folded.onnx); give -o to fold it anyway", input);
	run->own_outputs++;
	return true;
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

	if (skip_own_output(run, o, input))
		return 0;
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
	run->bn_left += n.skipped;
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
	char failed[160] = "";

	if (run->failed)
		snprintf(failed, sizeof(failed), "; %zu failed", run->failed);
	if (run->own_outputs)
		snprintf(failed + strlen(failed), sizeof(failed) - strlen(failed), "; %zu bnfold output%s skipped",
			 run->own_outputs, run->own_outputs == 1 ? "" : "s");
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
