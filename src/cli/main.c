/* bnfold command line: options, exit codes, messages.  The work is in
 * cli_run.c. */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bnfold.h"
#include "cli_run.h"
#include "messages.h"
#include "signals.h"

/* Documented in --help, bnfold.1 and docs/usage.md. */
enum { EXIT_OK = 0, EXIT_IO = 1, EXIT_USAGE = 2, EXIT_FOLDABLE = 3, EXIT_VERIFY = 4 };

/* Long options without a short form. */
enum {
	OPT_REPORT = 256, OPT_FOLD_OVERRIDABLE, OPT_IN_PLACE, OPT_CHECK, OPT_NO_STREAM, OPT_INLINE, OPT_NO_SYNC,
	OPT_VERIFY, OPT_NO_VERIFY, OPT_TOLERANCE, OPT_SYNC, OPT_STRICT, OPT_STATS,
};

static void usage(FILE *f)
{
	fputs("Usage: bnfold [OPTIONS] INPUT.onnx [-o OUTPUT.onnx]\n"
	      "       bnfold [OPTIONS] INPUT.onnx... [-O DIR | --in-place]\n"
	      "       bnfold --check [OPTIONS] INPUT.onnx...\n"
	      "       bnfold --list [OPTIONS] INPUT.onnx...\n"
	      "Fold BatchNormalization nodes into the layer next to them (the Conv, Gemm\n"
	      "or MatMul before, or a Conv after), exactly.\n"
	      "\n"
	      "Jobs (default: write the folded model):\n"
	      "      --check             write no model; exit 3 if a BatchNormalization would\n"
	      "                          fold in any INPUT, listing each one on stderr\n"
	      "      --strict            with --check: exit 3 if any BatchNormalization\n"
	      "                          remains, foldable or not, listing each and why\n"
	      "  -l, --list, --dry-run   write no model; print a table of every\n"
	      "                          BatchNormalization (fold or skip, and why) on stdout\n"
	      "\n"
	      "Output:\n"
	      "  -o, --output FILE       write the folded model of the only INPUT to FILE\n"
	      "                          ('-' = stdout)\n"
	      "  -O, --output-dir DIR    write each folded model to DIR under its input's name\n"
	      "                          (DIR is created if missing, not its parent)\n"
	      "      --in-place          replace each INPUT with its folded model (atomically)\n"
	      "  -f, --force             replace an existing file at a derived output path\n"
	      "                          (default: INPUT with .onnx replaced by .folded.onnx,\n"
	      "                          or stdout when INPUT is '-'), or write a model to a\n"
	      "                          terminal.  An INPUT named NAME.folded.onnx is\n"
	      "                          skipped unless -o or --in-place says where it goes\n"
	      "      --report FILE       write a JSON report of every INPUT, fusion, skip\n"
	      "                          and error ('-' = stdout)\n"
	      "      --sync              wait for every output to reach the disk before\n"
	      "                          renaming it into place (by default only one that\n"
	      "                          replaces a file: --in-place, or over a file)\n"
	      "      --no-sync           never wait, not even in place (after a crash or\n"
	      "                          power loss the output may be empty or partial);\n"
	      "                          --no-fsync is its older name\n"
	      "\n"
	      "Folding:\n"
	      "      --fold-overridable  also fold initializers listed as graph inputs\n"
	      "                          (IR >= 4), treating them as constants and removing\n"
	      "                          those inputs\n"
	      "      --inline            put weights kept in external data files into the\n"
	      "                          model itself (below 2 GB); by default they go to\n"
	      "                          OUTPUT.data beside the output\n"
	      "      --no-stream         read every weight into memory instead of streaming\n"
	      "                          it from the input (slower; the same output)\n"
	      "      --verify            check each fusion numerically; nothing is written\n"
	      "                          unless every check passes (the default); see\n"
	      "                          exit status 4\n"
	      "      --no-verify         do not check the fusions\n"
	      "      --tolerance X       the relative error a fusion may show, instead of\n"
	      "                          about 2 rounding units of its type\n"
	      "\n"
	      "Messages:\n"
	      "  -q, --quiet             print errors only (no summary, list or table)\n"
	      "  -v, --verbose           print every fusion and skip, and the --stats table;\n"
	      "                          --list adds DETAILS\n"
	      "      --stats             print the nodes per op type before and after, and\n"
	      "                          the sizes of the files read and written\n"
	      "  -V, --version           print the version\n"
	      "  -h, --help              print this help\n"
	      "\n"
	      "Two INPUTs and no -o, -O, --in-place, --check or --list are refused (exit 2):\n"
	      "'bnfold IN OUT' does not write OUT; run 'bnfold IN -o OUT'.  A model is not\n"
	      "read from a terminal, nor written to one without -f.\n"
	      "\n"
	      "Exit status: 0 success (--check: nothing left to fold), 1 input or output\n"
	      "error in any INPUT (the others are still processed), 2 usage error,\n"
	      "3 --check found a BatchNormalization that would fold (with --strict: any\n"
	      "BatchNormalization left), 4 a fusion failed\n"
	      "verification (nothing written for that INPUT).  1 wins over 4, 4 over 3.\n"
	      "\n"
	      "Examples:\n"
	      "  bnfold model.onnx -o model.folded.onnx --report fold.json\n"
	      "  bnfold models/*.onnx -O folded/        # folded/NAME.onnx for each input\n"
	      "  bnfold --in-place model.onnx\n"
	      "  bnfold - -o - < model.onnx > folded.onnx\n"
	      "  bnfold --check models/*.onnx || echo 'fold these models first'\n"
	      "  bnfold --list -v model.onnx\n"
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

static bool is_stdio(const char *path)
{
	return strcmp(path, "-") == 0;
}

/* The two inputs are a model and the file bnfold would write it to
 * (NAME.onnx and NAME.folded.onnx, either order): the named output is
 * skipped as bnfold's own and the model folded into it, which is what
 * 'bnfold IN OUT' meant; any other pair is ambiguous. */
static bool model_and_its_output(const bnf_run_options *o, char **inputs)
{
	bool pair = false;
	for (int k = 0; k < 2 && !pair; k++) {
		char *out = bnf_run_is_output_name(inputs[1 - k]) ? bnf_run_output_path(o, inputs[k]) : NULL;
		pair = out && strcmp(out, inputs[1 - k]) == 0;
		free(out);
	}
	return pair;
}

/* Writing models: 'bnfold IN OUT' (which would leave OUT unfolded) and a
 * model to a terminal are refused.  EXIT_OK or EXIT_USAGE. */
static int check_habits(const bnf_run_options *o, char **inputs, int n)
{
	if (n == 2 && !o->output && !o->out_dir && !o->in_place && !model_and_its_output(o, inputs))
		return usage_error("two models given without -o: to fold IN into OUT, run: bnfold IN -o OUT "
				   "(to fold both, give -O DIR or --in-place)");
	if (n == 1 && !o->force && isatty(STDOUT_FILENO)) {
		char *out = bnf_run_output_path(o, inputs[0]);
		bool tty = out && is_stdio(out);
		free(out);
		if (tty)
			return usage_error("refusing to write a model to a terminal; redirect standard output, "
					   "give -o FILE, or -f to force it");
	}
	return EXIT_OK;
}

/* Usage errors that need every option and input: returns EXIT_OK or EXIT_USAGE. */
static int check_combination(const bnf_run_options *o, const char *report_path, char **inputs, int n)
{
	const char *job = o->job == BNF_JOB_CHECK ? "--check" : "--list";
	int n_stdin = 0;

	for (int i = 0; i < n; i++)
		n_stdin += is_stdio(inputs[i]);
	if (n_stdin > 1)
		return usage_error("stdin ('-') can be read only once");
	if (o->strict && o->job != BNF_JOB_CHECK)
		return usage_error("--strict is an option of --check");
	if (n_stdin && isatty(STDIN_FILENO))
		return usage_error("refusing to read a model from a terminal; redirect standard input or name a file");
	if (o->job != BNF_JOB_FOLD) {
		if (o->output || o->out_dir || o->in_place)
			return usage_error("%s writes no model; %s cannot be used with it", job,
					   o->output ? "-o" : o->out_dir ? "-O" : "--in-place");
		if (o->job == BNF_JOB_LIST && report_path && is_stdio(report_path))
			return usage_error("the table and the report cannot both go to stdout");
		return EXIT_OK;
	}
	if (o->in_place && (o->output || o->out_dir))
		return usage_error("--in-place and %s cannot be used together", o->output ? "-o" : "-O");
	if (o->output && o->out_dir)
		return usage_error("-o and -O cannot be used together");
	if (o->output && n > 1)
		return usage_error("-o takes one input; use -O DIR for several");
	if (n_stdin && o->in_place)
		return usage_error("--in-place needs a file, not stdin");
	if (n_stdin && o->out_dir)
		return usage_error("-O needs input files, not stdin; use -o");
	if (n_stdin && n > 1)
		return usage_error("stdin ('-') cannot be one of several inputs when writing models");
	if (check_habits(o, inputs, n) != EXIT_OK)
		return EXIT_USAGE;
	if (n == 1 && report_path && is_stdio(report_path)) {
		char *out = bnf_run_output_path(o, inputs[0]);
		bool both = !out || is_stdio(out);
		free(out);
		if (both)
			return usage_error("the model and the report cannot both go to stdout");
	}
	/* Two inputs must not share an output (same base name under -O, or the same input twice). */
	if (n > 1 && !o->in_place) {
		char **outs = calloc((size_t)n, sizeof(*outs));
		int rc = EXIT_OK;
		for (int i = 0; outs && i < n && rc == EXIT_OK; i++) {
			if (!(outs[i] = bnf_run_output_path(o, inputs[i])))
				break;
			for (int j = 0; j < i && rc == EXIT_OK; j++)
				if (strcmp(outs[i], outs[j]) == 0)
					rc = usage_error("'%s' and '%s' would both be written to '%s'", inputs[j],
							 inputs[i], outs[i]);
		}
		for (int i = 0; outs && i < n; i++)
			free(outs[i]);
		free(outs);
		return rc;
	}
	return EXIT_OK;
}

/* Read the options into o, *report_path, *check and *list.  Returns -1 to
 * go on, or the exit status (--help, --version, a usage error). */
static int parse_options(int argc, char **argv, bnf_run_options *o, const char **report_path, bool *check,
			 bool *list)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"output-dir", required_argument, NULL, 'O'},
		{"report", required_argument, NULL, OPT_REPORT},
		{"fold-overridable", no_argument, NULL, OPT_FOLD_OVERRIDABLE},
		{"no-stream", no_argument, NULL, OPT_NO_STREAM},
		{"inline", no_argument, NULL, OPT_INLINE},
		{"sync", no_argument, NULL, OPT_SYNC},
		{"no-sync", no_argument, NULL, OPT_NO_SYNC},
		{"no-fsync", no_argument, NULL, OPT_NO_SYNC}, /* the older name of --no-sync */
		{"verify", no_argument, NULL, OPT_VERIFY},
		{"no-verify", no_argument, NULL, OPT_NO_VERIFY},
		{"tolerance", required_argument, NULL, OPT_TOLERANCE},
		{"in-place", no_argument, NULL, OPT_IN_PLACE},
		{"force", no_argument, NULL, 'f'},
		{"check", no_argument, NULL, OPT_CHECK},
		{"strict", no_argument, NULL, OPT_STRICT},
		{"stats", no_argument, NULL, OPT_STATS},
		{"list", no_argument, NULL, 'l'},
		{"dry-run", no_argument, NULL, 'l'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0; /* unknown options are reported below, in bnfold's words */
	while ((c = getopt_long(argc, argv, ":o:O:flqvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': o->output = optarg; break;
		case 'O': o->out_dir = optarg; break;
		case OPT_REPORT: *report_path = optarg; break;
		case OPT_FOLD_OVERRIDABLE: o->lib.fold_overridable = true; break;
		case OPT_NO_STREAM: o->lib.stream = false; break;
		case OPT_INLINE: o->lib.inline_external = true; break;
		case OPT_SYNC: o->lib.sync = BNFOLD_SYNC_ALWAYS; break;
		case OPT_NO_SYNC: o->lib.sync = BNFOLD_SYNC_NEVER; break;
		case OPT_VERIFY: o->lib.verify = true; break;
		case OPT_NO_VERIFY: o->lib.verify = false; break;
		case OPT_TOLERANCE: {
			char *end;
			o->lib.tolerance = strtod(optarg, &end);
			if (end == optarg || *end || !(o->lib.tolerance >= 0) || !isfinite(o->lib.tolerance))
				return usage_error("--tolerance needs a number >= 0, not '%s'", optarg);
			break;
		}
		case OPT_IN_PLACE: o->in_place = true; break;
		case 'f': o->force = true; break;
		case OPT_CHECK: *check = true; break;
		case OPT_STRICT: o->strict = true; break;
		case OPT_STATS: o->stats = true; break;
		case 'l': *list = true; break;
		case 'q': cli_display_level = 0; break;
		case 'v': cli_display_level = 2; break;
		case 'V': printf("bnfold %s\n", bnfold_version()); return EXIT_OK;
		case 'h': usage(stdout); return EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *report_path = NULL, *threads = getenv("BNFOLD_THREADS");
	bnf_run_options o = {0};
	bnf_run run = {0};
	bool check = false, list = false;
	int n, rc;

	bnfold_options_init(&o.lib);
	o.lib.tempfile = bnf_signals_tempfile; /* removed if a signal ends the run */
	if ((rc = parse_options(argc, argv, &o, &report_path, &check, &list)) >= 0)
		return rc;
	/* The switches of bnfold's tests (bnfold.1, ENVIRONMENT): any value of
	 * BNFOLD_NO_AVX2, and BNFOLD_THREADS exactly "1". */
	o.lib.no_simd = getenv("BNFOLD_NO_AVX2") != NULL;
	o.lib.threads = threads && strcmp(threads, "1") == 0 ? 1 : 0;
	n = argc - optind;
	if (n == 0)
		return usage_error("no input file given");
	if (check && list)
		return usage_error("--check and --list cannot be used together");
	o.job = check ? BNF_JOB_CHECK : list ? BNF_JOB_LIST : BNF_JOB_FOLD;
	o.headings = n > 1;
	o.report = report_path != NULL;
	if ((rc = check_combination(&o, report_path, argv + optind, n)) != EXIT_OK)
		return rc;
	for (int i = optind; report_path && i < argc; i++)
		if (cli_same_file(report_path, argv[i])) {
			cli_error("%s: refusing to write the report over the input", report_path);
			return EXIT_IO;
		}
	if (report_path && o.output && strcmp(report_path, "-") != 0 &&
	    (strcmp(report_path, o.output) == 0 || cli_same_file(report_path, o.output)))
		return usage_error("the model and the report cannot go to the same file");
	if (o.out_dir && bnf_run_check_dir(o.out_dir) < 0)
		return EXIT_IO;

	/* One failing input does not stop the others. */
	for (int i = optind; i < argc; i++)
		bnf_run_file(&run, &o, argv[i]);
	if (n > 1)
		bnf_run_totals(&run, &o);
	if (report_path && bnf_run_write_report(&run, &o, report_path) < 0)
		run.failed++;

	rc = run.failed ? EXIT_IO
	     : run.verify_failed ? EXIT_VERIFY
	     : o.job == BNF_JOB_CHECK && (run.folded || (o.strict && run.bn_left)) ? EXIT_FOLDABLE : EXIT_OK;
	bnf_run_free(&run);
	return rc;
}
