/* bnfold command line: options, exit codes, messages. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "edit.h"
#include "model_io.h"
#include "report.h"

enum { EXIT_OK = 0, EXIT_IO = 1, EXIT_USAGE = 2, EXIT_VERIFY = 4 };

static void usage(FILE *f)
{
	fputs("Usage: bnfold [OPTIONS] INPUT.onnx [-o OUTPUT.onnx]\n"
	      "Fold BatchNormalization nodes into the Conv before them, exactly.\n"
	      "\n"
	      "  -o, --output FILE       write the folded model to FILE ('-' = stdout);\n"
	      "                          default INPUT with .onnx replaced by .folded.onnx\n"
	      "                          (stdout when INPUT is '-')\n"
	      "      --report FILE       write a JSON report of every fusion and skip ('-' = stdout)\n"
	      "      --fold-overridable  also fold initializers listed as graph inputs (IR >= 4),\n"
	      "                          treating them as constants and removing those inputs\n"
	      "      --in-place          replace INPUT with the folded model (atomically)\n"
	      "      --verify            check each fusion numerically before writing\n"
	      "                          (the default); see exit status 4\n"
	      "      --no-verify         do not check the fusions\n"
	      "      --tolerance X       the relative error a fusion may show, instead of\n"
	      "                          about 2 rounding units of its type\n"
	      "  -f, --force             replace an existing file at the default output path\n"
	      "  -q, --quiet             print errors only\n"
	      "  -v, --verbose           print every fusion and skip\n"
	      "  -V, --version           print the version\n"
	      "  -h, --help              print this help\n"
	      "\n"
	      "Exit status: 0 success, 1 input or output error, 2 usage error,\n"
	      "4 a fusion failed verification (nothing written).\n"
	      "\n"
	      "Examples:\n"
	      "  bnfold model.onnx -o model.folded.onnx --report fold.json\n"
	      "  bnfold --fold-overridable old_export.onnx\n",
	      f);
}

/* Report a usage error in one line plus a pointer to --help. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("bnfold: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'bnfold --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

/* INPUT minus a trailing ".onnx", plus ".folded.onnx". */
static char *default_output(const char *input)
{
	size_t n = strlen(input);
	if (n > 5 && strcmp(input + n - 5, ".onnx") == 0)
		n -= 5;
	return bnf_asprintf("%.*s.folded.onnx", (int)n, input);
}

static void summary(const bnf_result *r, const char *input, const char *output)
{
	char reasons[512] = "";
	size_t used = 0;

	for (int k = 0; k < BNF_REASON_COUNT; k++) {
		size_t n = 0;
		for (size_t i = 0; i < r->n_skips; i++)
			n += r->skips[i].reason == (bnf_reason)k;
		if (n && used < sizeof(reasons)) {
			int w = snprintf(reasons + used, sizeof(reasons) - used, "%s%s %zu", used ? ", " : " (",
					 bnf_reason_code((bnf_reason)k), n);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	if (used && used < sizeof(reasons) - 1)
		strcat(reasons, ")");
	bnf_info(1, "bnfold: %s -> %s: folded %zu of %zu BatchNormalization, skipped %zu%s; nodes %zu -> %zu",
		 input, output ? output : "(not written)", bnf_result_bn_folded(r), r->bn_found, r->n_skips, reasons,
		 r->nodes_before, r->nodes_after);
	if (r->n_fusions > bnf_result_bn_folded(r))
		bnf_info(1, "bnfold: also folded %zu per-channel Mul/Add into the layer before them",
			 r->n_fusions - bnf_result_bn_folded(r));
	for (size_t i = 0; i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		char check[160] = "";
		if (f->verified)
			snprintf(check, sizeof(check), "; verify max_rel_err %.2e <= %.2e, max_abs_err %.2e, %zu outputs",
				 f->verify.max_rel_err, f->verify.tolerance, f->verify.max_abs_err, f->verify.outputs);
		bnf_info(2, "  folded   %s '%s' <- %s '%s' (%s, %s, %zu channels, %s%s%s%s)", f->layer_op,
			 f->layer, f->node_op, f->bn, f->pattern, f->graph, f->channels, bnf_dtype_name(f->dtype),
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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"report", required_argument, NULL, 'R'},
		{"fold-overridable", no_argument, NULL, 'O'},
		{"in-place", no_argument, NULL, 'I'},
		{"verify", no_argument, NULL, 'Y'},
		{"no-verify", no_argument, NULL, 'N'},
		{"tolerance", required_argument, NULL, 'T'},
		{"force", no_argument, NULL, 'f'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *input, *output = NULL, *report_path = NULL;
	char *derived = NULL, *report = NULL;
	bool in_place = false, force = false;
	bnf_fold_options opt = {0};
	bnf_input in = {0};
	bnf_result res = {0};
	bnf_output out;
	int c, rc = EXIT_IO;

	opterr = 0; /* unknown options are reported below, in bnfold's words */
	while ((c = getopt_long(argc, argv, ":o:fqvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'R': report_path = optarg; break;
		case 'O': opt.fold_overridable = true; break;
		case 'I': in_place = true; break;
		case 'Y': opt.no_verify = false; break;
		case 'N': opt.no_verify = true; break;
		case 'T': {
			char *end;
			opt.tolerance = strtod(optarg, &end);
			if (end == optarg || *end || !(opt.tolerance >= 0) || !isfinite(opt.tolerance))
				return usage_error("--tolerance needs a number >= 0, not '%s'", optarg);
			opt.tolerance_set = true;
			break;
		}
		case 'f': force = true; break;
		case 'q': bnf_display_level = 0; break;
		case 'v': bnf_display_level = 2; break;
		case 'V': printf("bnfold %s\n", BNF_VERSION); return EXIT_OK;
		case 'h': usage(stdout); return EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error(optind == argc ? "no input file given" : "more than one input file given");
	input = argv[optind];
	if (in_place && output)
		return usage_error("--in-place and -o cannot be used together");
	if (in_place && strcmp(input, "-") == 0)
		return usage_error("--in-place needs a file, not stdin");
	if (in_place) {
		output = input;
	} else if (!output) {
		struct stat st;
		if (strcmp(input, "-") == 0) {
			output = "-";
		} else {
			if (!(derived = default_output(input)))
				return bnf_error("out of memory"), EXIT_IO;
			output = derived;
			if (!force && stat(output, &st) == 0) {
				bnf_error("%s: already exists; use -f to replace it or -o to choose another name", output);
				free(derived);
				return EXIT_IO;
			}
		}
	}
	if (report_path && strcmp(report_path, "-") == 0 && strcmp(output, "-") == 0) {
		free(derived);
		return usage_error("the model and the report cannot both go to stdout");
	}
	if (!in_place && bnf_same_file(input, output)) {
		bnf_error("%s: refusing to overwrite the input; use --in-place to replace it", output);
		free(derived);
		return EXIT_IO;
	}

	if (bnf_input_open(input, &in) < 0)
		goto done;
	if (bnf_fold_model(in.model, input, &opt, &res) < 0)
		goto done;
	if (bnf_result_verify_failed(&res) > 0) {
		verify_failures(&res, input);
		rc = EXIT_VERIFY;
		goto done;
	}
	if (report_path && !(report = bnf_report_json(&res, input, output, &opt)))
		goto done;
	if (bnf_output_open(output, &out) < 0)
		goto done;
	if (res.n_fusions == 0)
		bnf_output_write(&out, in.data, in.len); /* nothing changed: the input, byte for byte */
	else
		bnf_output_write_model(&out, in.model);
	if (bnf_output_commit(&out) < 0)
		goto done;
	if (report) {
		size_t n = strlen(report);
		report[n] = '\n';
		if (bnf_write_file(report_path, report, n + 1) < 0)
			goto done;
	}
	summary(&res, input, output);
	rc = EXIT_OK;
done:
	free(report);
	free(derived);
	bnf_result_free(&res);
	bnf_input_close(&in);
	return rc;
}
