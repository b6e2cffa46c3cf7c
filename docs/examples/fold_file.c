/* fold_file: fold the BatchNormalization nodes of one ONNX model with
 * libbnfold and say what was done.
 *
 *   cc fold_file.c $(pkg-config --cflags --libs bnfold) -o fold_file
 *   ./fold_file model.onnx model.folded.onnx
 *
 * Exit status: 0 when the folded model was written, 1 on any error (the
 * message is on stderr and nothing was written), 2 on wrong usage. */
#include <stdio.h>

#include <bnfold.h>

/* Names in messages come from the model and may hold any byte: show
 * control characters as \xNN so they cannot garble the terminal. */
static void show(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

int main(int argc, char **argv)
{
	bnfold_options opt;
	bnfold_result *res = NULL;
	bnfold_error err;
	bnfold_counts n;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IN.onnx OUT.onnx\n", argv[0]);
		return 2;
	}

	/* Start from the defaults (every fusion is checked numerically, the
	 * output goes through a temp file renamed into place), then change
	 * what you need, e.g. opt.fold_overridable = true. */
	bnfold_options_init(&opt);

	if (bnfold_fold_file(argv[1], argv[2], &opt, &res, &err) != BNFOLD_OK) {
		/* One line naming the file.  On BNFOLD_E_VERIFY res is kept and
		 * tells which fusion failed its check; here we only print the
		 * message.  Either way nothing was written to OUT. */
		fputs("fold_file: ", stderr);
		show(stderr, err.message);
		fputc('\n', stderr);
		bnfold_result_free(res);
		return 1;
	}

	bnfold_result_counts(res, &n);
	printf("folded %zu of %zu BatchNormalization, %zu skipped, %zu Mul/Add\n", n.bn_folded, n.bn_found, n.skipped,
	       n.affine_folded);

	/* Each BatchNormalization left in place, with a stable reason code
	 * (docs/reasons.md lists them) and a sentence saying what exactly. */
	for (size_t i = 0; i < bnfold_result_n_skips(res); i++) {
		const bnfold_skip *s = bnfold_result_skip(res, i);
		printf("skipped '");
		show(stdout, s->bn);
		printf("': %s: ", s->reason);
		show(stdout, s->message);
		putchar('\n');
	}

	/* The strings above belong to the result: free it last. */
	bnfold_result_free(res);
	return 0;
}
