/* Fold one file through the public API and print what came back, for
 * tests/api/test_api_bad.py:
 *
 *   api_fold [--fold-overridable] [--no-verify] [--buffer] IN OUT
 *
 * With --buffer, IN is read into memory and folded by bnfold_fold_buffer
 * (named IN), and what comes back is written to OUT on success.
 *
 * stdout, one item a line (control bytes as \xNN, so each stays one line):
 *   code=<n> name=<status name> message=<message>
 *   counts bn_found=<n> folded=<n> affine=<n> skipped=<n> verify_failed=<n>   (when there is a result)
 *   skip reason=<code> message=<message>                                      (each skip)
 *   tempfiles created=<n> released=<n>   (tempfile callback calls with exists true; with exists
 *                                         false for a path announced and not yet released)
 * It prints nothing on stderr itself, so anything there is the library's
 * (or a sanitizer's).  The exit status is the status code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnfold.h"

static void show(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : "(null)"); *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

struct temps {
	int created, released;
	char open[4][4096]; /* announced, not yet released ("" free) */
};

static void on_tempfile(const char *path, bool exists, void *ctx)
{
	struct temps *t = ctx;
	for (int i = 0; i < 4; i++) {
		if (exists && !t->open[i][0] && strlen(path) < sizeof(t->open[i])) {
			strcpy(t->open[i], path);
			t->created++;
			return;
		}
		if (!exists && t->open[i][0] && strcmp(t->open[i], path) == 0) {
			t->open[i][0] = '\0';
			t->released++;
			return;
		}
	}
}

/* IN read into memory and folded by bnfold_fold_buffer; OUT written on
 * success.  An input that cannot be read, or an output that cannot be
 * written, is reported as the library would (BNFOLD_E_IO). */
static bnfold_status fold_buffer(const char *in, const char *out, const bnfold_options *o, bnfold_result **res,
				 bnfold_error *err)
{
	FILE *f = fopen(in, "rb");
	unsigned char *data = NULL;
	size_t len = 0, cap = 0, got = 1;
	void *folded = NULL;
	size_t folded_len = 0;
	bnfold_status st;

	while (f && got > 0) {
		unsigned char *nd = len < cap ? data : realloc(data, cap = cap ? 2 * cap : 65536);
		if (!nd)
			break;
		data = nd;
		len += got = fread(data + len, 1, cap - len, f);
	}
	if (!f || got > 0 || ferror(f)) {
		err->code = BNFOLD_E_IO;
		snprintf(err->message, sizeof(err->message), "%s: cannot read", in);
		if (f)
			fclose(f);
		free(data);
		return BNFOLD_E_IO;
	}
	fclose(f);
	st = bnfold_fold_buffer(data, len, in, &folded, &folded_len, o, res, err);
	if (st == BNFOLD_OK && (!(f = fopen(out, "wb")) || fwrite(folded, 1, folded_len, f) != folded_len ||
				fclose(f) != 0)) {
		err->code = st = BNFOLD_E_IO;
		snprintf(err->message, sizeof(err->message), "%s: cannot write", out);
	}
	bnfold_free(folded);
	free(data);
	return st;
}

int main(int argc, char **argv)
{
	bnfold_options o;
	bnfold_result *res = NULL;
	bnfold_error err;
	bnfold_status st;
	static struct temps temps;
	int i = 1;
	bool buffer = false;

	bnfold_options_init(&o);
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--fold-overridable") == 0)
			o.fold_overridable = true;
		else if (strcmp(argv[i], "--no-verify") == 0)
			o.verify = false;
		else if (strcmp(argv[i], "--buffer") == 0)
			buffer = true;
		else
			return 64;
	}
	if (argc - i != 2)
		return 64;
	o.tempfile = on_tempfile;
	o.tempfile_ctx = &temps;

	st = buffer ? fold_buffer(argv[i], argv[i + 1], &o, &res, &err)
		    : bnfold_fold_file(argv[i], argv[i + 1], &o, &res, &err);
	printf("code=%d name=%s message=", (int)err.code, bnfold_status_name(err.code));
	show(err.message);
	putchar('\n');
	if (res) {
		bnfold_counts n;
		bnfold_result_counts(res, &n);
		printf("counts bn_found=%zu folded=%zu affine=%zu skipped=%zu verify_failed=%zu\n", n.bn_found,
		       n.bn_folded, n.affine_folded, n.skipped, n.verify_failed);
		for (size_t k = 0; k < bnfold_result_n_skips(res); k++) {
			const bnfold_skip *s = bnfold_result_skip(res, k);
			printf("skip reason=%s message=", s->reason);
			show(s->message);
			putchar('\n');
		}
	}
	printf("tempfiles created=%d released=%d\n", temps.created, temps.released);
	bnfold_result_free(res);
	return st == err.code ? (int)st : 70;
}
