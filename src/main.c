/* bnfold command line: options, exit codes, messages. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "edit.h"
#include "model_io.h"
#include "report.h"

enum { EXIT_OK = 0, EXIT_IO = 1, EXIT_USAGE = 2 };

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
	      "  -f, --force             replace an existing file at the default output path\n"
	      "  -q, --quiet             print errors only\n"
	      "  -v, --verbose           print every fusion and skip\n"
	      "  -V, --version           print the version\n"
	      "  -h, --help              print this help\n"
	      "\n"
	      "Exit status: 0 success, 1 input or output error, 2 usage error.\n"
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
		 input, output ? output : "(not written)", r->n_fusions, r->bn_found, r->n_skips, reasons,
		 r->nodes_before, r->nodes_after);
	for (size_t i = 0; i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		bnf_info(2, "  folded   %s '%s' <- BatchNormalization '%s' (%s, %zu channels, %s%s%s)", f->layer_op,
			 f->layer, f->bn, f->graph, f->channels, bnf_dtype_name(f->dtype),
			 f->weight_copied ? ", weight copied" : "", f->bias_created ? ", bias added" : "");
	}
	for (size_t i = 0; i < r->n_skips; i++) {
		const bnf_skip *s = &r->skips[i];
		bnf_info(2, "  skipped  BatchNormalization '%s' (output '%s', %s): %s: %s", s->bn, s->bn_output,
			 s->graph, bnf_reason_code(s->reason), s->message);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"report", required_argument, NULL, 'R'},
		{"fold-overridable", no_argument, NULL, 'O'},
		{"in-place", no_argument, NULL, 'I'},
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
	if (report_path && strcmp(report_path, "-") != 0) {
		if (bnf_same_file(input, report_path)) {
			bnf_error("%s: refusing to write the report over the input", report_path);
			free(derived);
			return EXIT_IO;
		}
		if (strcmp(report_path, output) == 0 || bnf_same_file(report_path, output)) {
			free(derived);
			return usage_error("the model and the report cannot go to the same file");
		}
	}

	if (bnf_input_open(input, &in) < 0)
		goto done;
	/* New weight tensors may take as much as the input, or the default cap. */
	opt.max_new_bytes = in.len > BNF_MAX_NEW_BYTES ? in.len : BNF_MAX_NEW_BYTES;
	if (bnf_fold_model(in.model, input, &opt, &res) < 0)
		goto done;
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
