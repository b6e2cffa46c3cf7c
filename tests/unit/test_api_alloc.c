/* bnfold_options.out_alloc: bnfold_fold_buffer writes the folded model
 * into memory the caller gives, the same bytes as into its own; the
 * library never frees that memory (every block is freed here, so ASan
 * reports a second free); a NULL from it is BNFOLD_E_NOMEM; a call that
 * folds again after a deferred scan asks again, and the output is in the
 * memory asked for last.
 *   test_api_alloc TESTDATA */
#include <stdlib.h>
#include <string.h>

#include "api_util.h"
#include "bnfold.h"
#include "tap.h"

/* What an allocator was asked for: up to 4 blocks, kept to be freed here. */
struct asked {
	void *block[4];
	size_t size[4];
	int n;
	bool refuse;
};

static void *give(size_t size, void *ctx)
{
	struct asked *a = ctx;
	void *p;
	if (a->refuse || a->n == 4 || !(p = malloc(size ? size : 1)))
		return NULL;
	a->block[a->n] = p;
	a->size[a->n++] = size;
	return p;
}

static void asked_free(struct asked *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->block[i]);
	memset(a, 0, sizeof(*a));
}

/* Fold fixture with the library's memory, then with the allocator's;
 * o (from the caller) gets the allocator set here. */
static void fold_both(const char *fixture, bnfold_options *o, int calls_expected)
{
	char path[1024];
	size_t len, want_len = 0, got_len = 0;
	unsigned char *in;
	void *want = NULL, *got = NULL;
	struct asked a = {0};
	bnfold_status st_want, st_got;

	path_in(path, sizeof(path), getenv("TESTDATA"), fixture);
	in = util_read(path, &len);
	st_want = bnfold_fold_buffer(in, len, fixture, &want, &want_len, o, NULL, NULL);
	o->out_alloc = give;
	o->out_alloc_ctx = &a;
	st_got = bnfold_fold_buffer(in, len, fixture, &got, &got_len, o, NULL, NULL);
	OK(st_want == BNFOLD_OK && st_got == BNFOLD_OK && got_len == want_len && memcmp(got, want, want_len) == 0,
	   "%s: the same bytes in the caller's memory", fixture);
	OK(a.n == calls_expected && got == a.block[a.n - 1] && a.size[a.n - 1] == got_len,
	   "%s: asked %d time(s) (expected %d), the output in the last block, of its exact size", fixture, a.n,
	   calls_expected);
	bnfold_free(want);
	asked_free(&a); /* got among them */
	free(in);
}

int main(int argc, char **argv)
{
	bnfold_options o;
	struct asked a = {0};
	char path[1024], msg[1024];
	size_t len, out_len = 7;
	unsigned char *in;
	void *out = (void *)&a;
	bnfold_error e;
	bnfold_status st;

	if (argc != 2) {
		fprintf(stderr, "usage: test_api_alloc TESTDATA\n");
		return 2;
	}
	setenv("TESTDATA", argv[1], 1);
	bnfold_options_init(&o);
	OK(o.out_alloc == NULL && o.out_alloc_ctx == NULL, "out_alloc is NULL by default");
	fold_both("demo.onnx", &o, 1);
	bnfold_options_init(&o);
	fold_both("conv_bn_fp16.onnx", &o, 1);
	/* a NaN in a weight read in place: folded first without the scan,
	 * met while writing, folded again with it */
	bnfold_options_init(&o);
	fold_both("conv_bn_nan_weight.onnx", &o, 2);

	/* refused: out of memory, nothing returned */
	path_in(path, sizeof(path), argv[1], "demo.onnx");
	in = util_read(path, &len);
	bnfold_options_init(&o);
	a.refuse = true;
	o.out_alloc = give;
	o.out_alloc_ctx = &a;
	st = bnfold_fold_buffer(in, len, "demo.onnx", &out, &out_len, &o, NULL, &e);
	snprintf(msg, sizeof(msg), "%s", e.message);
	OK(st == BNFOLD_E_NOMEM && out == NULL && out_len == 0 && strstr(msg, "demo.onnx: out of memory") == msg,
	   "the allocator gives nothing: BNFOLD_E_NOMEM, nothing returned (%s)", msg);
	asked_free(&a);
	free(in);
	/* a check that fails while the model is being written, after the
	 * allocator was asked: nothing returned, the block still the caller's
	 * (freed here: a free by the library shows under ASan) */
	static const char *const late[] = {"conv_bn_function.onnx", "gemm_bn_bf16.onnx"};
	for (size_t i = 0; i < sizeof(late) / sizeof(late[0]); i++) {
		path_in(path, sizeof(path), argv[1], late[i]);
		in = util_read(path, &len);
		bnfold_options_init(&o);
		o.tolerance = 1e-30;
		o.out_alloc = give;
		o.out_alloc_ctx = &a;
		st = bnfold_fold_buffer(in, len, late[i], &out, &out_len, &o, NULL, &e);
		OK(st == BNFOLD_E_VERIFY && out == NULL && out_len == 0 && a.n >= 1,
		   "%s: a check fails after the allocator was asked (%d time(s)): BNFOLD_E_VERIFY, nothing returned",
		   late[i], a.n);
		asked_free(&a);
		free(in);
	}
	return tap_done();
}
