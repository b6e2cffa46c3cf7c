/* Every error a caller of the public API (bnfold.h) can provoke, with its
 * code, its one-line message naming the file or buffer, no result and
 * nothing written; verification failures (a result, nothing written, no
 * temp file); options structs of an older, smaller size; folding in
 * place; the tempfile callback; a program's signal handlers left alone.
 *   test_api_errors TESTDATA */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "api_util.h"

static const char *testdata;
static char tmp[512];

/* ---------------------------------------------------------------- errors */

#define SENTINEL ((void *)&tap_n) /* a pointer a call must overwrite */

/* A call that must fail with code, a good message, no result, no buffer. */
static void expect_buffer_error(const void *in, size_t len, const char *name, bnfold_status code, const char *what)
{
	void *out = SENTINEL;
	size_t out_len = 12345;
	bnfold_result *r = SENTINEL, *ri = SENTINEL;
	bnfold_error e, ei;
	bnfold_status st, si;

	st = bnfold_fold_buffer(in, len, name, &out, &out_len, NULL, &r, &e);
	si = bnfold_inspect_buffer(in, len, name, NULL, &ri, &ei);
	OK(st == code && e.code == code && good_message(&e, name ? name : "<buffer>") && r == NULL && out == NULL &&
	   out_len == 0, "%s: fold_buffer gives %s, no result, no buffer (%s)", what, bnfold_status_name(code), e.message);
	OK(si == code && ei.code == code && strcmp(e.message, ei.message) == 0 && ri == NULL,
	   "%s: inspect_buffer gives the same error", what);
}

static void test_bad_buffers(void)
{
	char path[1024];
	size_t len;
	unsigned char *demo, junk[4096];
	uint32_t z = 8;
	const size_t cuts[] = {1, 7, 50, 200};
	char what[100];

	for (size_t i = 0; i < sizeof(junk); i++) {
		z = z * 1103515245u + 12345u;
		junk[i] = (unsigned char)(z >> 16);
	}
	expect_buffer_error(NULL, 0, "empty.onnx", BNFOLD_E_NOT_ONNX, "an empty buffer (NULL, 0)");
	expect_buffer_error("", 0, NULL, BNFOLD_E_NOT_ONNX, "an empty buffer without a name");
	expect_buffer_error(junk, 16, "junk16", BNFOLD_E_NOT_ONNX, "16 random bytes");
	expect_buffer_error(junk, sizeof(junk), "junk4k", BNFOLD_E_NOT_ONNX, "4 KiB of random bytes");
	expect_buffer_error("ir_version: 8\n", 14, "text.onnx", BNFOLD_E_NOT_ONNX, "text, not protobuf");
	path_in(path, sizeof(path), testdata, "demo.onnx");
	demo = util_read(path, &len);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		snprintf(what, sizeof(what), "demo.onnx cut to %zu bytes", cuts[i]);
		expect_buffer_error(demo, cuts[i], "cut.onnx", BNFOLD_E_NOT_ONNX, what);
	}
	snprintf(what, sizeof(what), "demo.onnx cut to %zu of %zu bytes", len - 1, len);
	expect_buffer_error(demo, len - 1, "cut.onnx", BNFOLD_E_NOT_ONNX, what);
	free(demo);
}

static void test_invalid_args(void)
{
	char in_path[1024], out_path[1024];
	bnfold_options o;
	bnfold_result *r = SENTINEL;
	bnfold_error e;
	void *out = SENTINEL;
	size_t out_len = 1;
	int good;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "invalid-out.onnx");
	good = bnfold_fold_file(NULL, out_path, NULL, &r, &e) == BNFOLD_E_INVALID && r == NULL && good_message(&e, NULL);
	r = SENTINEL;
	good = good && bnfold_fold_file(in_path, NULL, NULL, &r, &e) == BNFOLD_E_INVALID && r == NULL &&
	       good_message(&e, NULL);
	good = good && bnfold_inspect_file(NULL, NULL, NULL, &e) == BNFOLD_E_INVALID && good_message(&e, NULL);
	OK(good && !util_exists(out_path), "fold_file / inspect_file with a NULL path: invalid_argument, no result");

	r = SENTINEL;
	good = bnfold_fold_buffer("x", 1, "b", NULL, &out_len, NULL, &r, &e) == BNFOLD_E_INVALID && r == NULL;
	good = good && bnfold_fold_buffer("x", 1, "b", &out, NULL, NULL, NULL, &e) == BNFOLD_E_INVALID && out == NULL;
	out = SENTINEL;
	good = good && bnfold_fold_buffer(NULL, 5, "b", &out, &out_len, NULL, NULL, &e) == BNFOLD_E_INVALID &&
	       out == NULL && out_len == 0 && good_message(&e, NULL);
	good = good && bnfold_inspect_buffer(NULL, 5, "b", NULL, NULL, &e) == BNFOLD_E_INVALID;
	OK(good, "fold_buffer / inspect_buffer without out, out_len or data: invalid_argument");
	OK(bnfold_write_file(NULL, "x", 1, NULL, &e) == BNFOLD_E_INVALID && good_message(&e, NULL) &&
	   bnfold_write_file(out_path, NULL, 1, NULL, &e) == BNFOLD_E_INVALID && !util_exists(out_path),
	   "write_file without a path or data: invalid_argument");

	bnfold_options_init(&o);
	o.size = 0;
	good = bnfold_inspect_file(in_path, &o, NULL, &e) == BNFOLD_E_INVALID && good_message(&e, NULL);
	o.size = (size_t)1 << 20;
	good = good && bnfold_inspect_file(in_path, &o, NULL, &e) == BNFOLD_E_INVALID;
	OK(good, "options of size 0 or 1 MiB: invalid_argument");
	bnfold_options_init(&o);
	o.tolerance = NAN;
	good = bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_E_INVALID && good_message(&e, NULL);
	bnfold_options_init(&o);
	o.threads = -1;
	good = good && bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_E_INVALID && good_message(&e, NULL);
	OK(good && !util_exists(out_path), "a NaN tolerance, negative threads: invalid_argument, nothing written");
	OK(bnfold_fold_buffer("junk", 4, "b", &out, &out_len, NULL, NULL, NULL) == BNFOLD_E_NOT_ONNX && out == NULL,
	   "err and result may be NULL");
}

/* ---------------------------------------------------------------- files */


struct temps {
	int created, released, existed, in_dir;
	char last[1024];
};

/* The tempfile callback: the temp file exists when announced, in the
 * output's folder (tmp); it is gone when released, under the same path as
 * the last one announced (one output at a time here). */
static void on_tempfile(const char *path, bool exists, void *ctx)
{
	struct temps *t = ctx;
	if (!exists) {
		t->released += strcmp(path, t->last) == 0 && !util_exists(path);
		return;
	}
	t->created++;
	t->existed += util_exists(path);
	t->in_dir += strncmp(path, tmp, strlen(tmp)) == 0 && path[strlen(tmp)] == '/' && !strchr(path + strlen(tmp) + 1, '/');
	snprintf(t->last, sizeof(t->last), "%s", path);
}

static void test_file_errors(void)
{
	char missing[1024], garbage[1024], out_path[1024];
	bnfold_result *r = SENTINEL;
	bnfold_error e;
	bnfold_status st;
	int before;

	path_in(missing, sizeof(missing), tmp, "missing.onnx");
	path_in(garbage, sizeof(garbage), tmp, "garbage.onnx");
	path_in(out_path, sizeof(out_path), tmp, "out.onnx");
	before = util_count_entries(tmp);
	st = bnfold_fold_file(missing, out_path, NULL, &r, &e);
	OK(st != BNFOLD_OK && e.code == st && good_message(&e, missing) && strstr(e.message, "No such file") && r == NULL,
	   "fold_file of a missing file: an error naming the file, no result (%s: %s)", bnfold_status_name(st), e.message);
	OK(st == BNFOLD_E_IO, "fold_file of a missing file: io_error (got %s)", bnfold_status_name(st));
	OK(!util_exists(out_path) && util_count_entries(tmp) == before, "... and no output, no temp file");
	st = bnfold_inspect_file(missing, NULL, &r, &e);
	OK(st != BNFOLD_OK && good_message(&e, missing), "inspect_file of a missing file: an error naming the file");
	OK(st == BNFOLD_E_IO, "inspect_file of a missing file: io_error (got %s)",
	    bnfold_status_name(st));

	/* An error leaves an existing output as it was. */
	util_write(garbage, "\x1f\x8b\x08\x00 not a model", 17);
	util_write(out_path, "keep", 4);
	r = SENTINEL;
	st = bnfold_fold_file(garbage, out_path, NULL, &r, &e);
	OK(st == BNFOLD_E_NOT_ONNX && good_message(&e, garbage) && strstr(e.message, "not an ONNX model") && r == NULL,
	   "fold_file of garbage: not_onnx naming the file (%s)", e.message);
	OK(util_same(out_path, "keep", 4) && util_count_entries(tmp) == before + 2,
	   "... and the existing output is untouched, no temp file left");
	unlink(garbage);
	unlink(out_path);
}

/* tolerance 0: every float fusion fails its check. */
static void test_verify_failure(void)
{
	char in_path[1024], out_path[1024];
	bnfold_options o;
	bnfold_result *r = NULL;
	bnfold_counts n;
	bnfold_error e;
	struct temps t = {0};
	struct folded b;
	size_t len;
	unsigned char *in;
	int before = util_count_entries(tmp), failed = 0;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "verify-out.onnx");
	bnfold_options_init(&o);
	o.tolerance = 0;
	o.tempfile = on_tempfile;
	o.tempfile_ctx = &t;
	OK(bnfold_fold_file(in_path, out_path, &o, &r, &e) == BNFOLD_E_VERIFY && e.code == BNFOLD_E_VERIFY &&
	   good_message(&e, in_path) && strstr(e.message, "fails verification") && strstr(e.message, "nothing written"),
	   "tolerance 0: fold_file gives verify_failed (%s)", e.message);
	bnfold_result_counts(r, &n);
	for (size_t i = 0; i < bnfold_result_n_fusions(r); i++)
		failed += bnfold_result_fusion(r, i)->check.done && !bnfold_result_fusion(r, i)->check.ok;
	OK(r && n.verify_failed == 3 && n.verified == 3 && failed == 3, "... with a result: 3 of 3 fusions failed");
	OK(!util_exists(out_path) && util_count_entries(tmp) == before && t.created == t.released,
	   "... no output, no temp file left (tempfile callback: %d created, %d released)", t.created, t.released);
	bnfold_result_free(r);

	util_write(out_path, "keep", 4);
	OK(bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_E_VERIFY && util_same(out_path, "keep", 4) &&
	   util_count_entries(tmp) == before + 1, "tolerance 0 over an existing output: it is untouched");
	unlink(out_path);

	in = util_read(in_path, &len);
	fold_buf(in, len, "demo", &o, &b);
	OK(b.st == BNFOLD_E_VERIFY && b.out == NULL && b.out_len == 0 && b.r && b.n.verify_failed == 3 &&
	   good_message(&b.e, "demo"), "tolerance 0: fold_buffer gives verify_failed, no buffer, a result");
	folded_free(&b);
	r = NULL;
	OK(bnfold_inspect_buffer(in, len, "demo", &o, &r, &e) == BNFOLD_E_VERIFY && r, "... and so does inspect_buffer");
	bnfold_result_free(r);
	o.verify = false;
	fold_buf(in, len, "demo", &o, &b);
	OK(b.st == BNFOLD_OK && b.n.verified == 0 && b.n.bn_folded == 3, "tolerance 0 without verify: OK, nothing checked");
	folded_free(&b);
	free(in);
}

/* A caller compiled against a header whose struct ended before
 * inline_external: the fields it knew count, the rest are the defaults
 * whatever the memory past its size holds. */
static void test_old_caller(void)
{
	char in_path[1024], out_path[1024], copy[1024];
	bnfold_options o;
	bnfold_error e;
	size_t len;
	unsigned char *in;
	struct folded want;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "old-out.onnx");
	path_in(copy, sizeof(copy), tmp, "old-in.onnx");
	in = util_read(in_path, &len);
	fold_buf(in, len, "demo", NULL, &want);

	bnfold_options_init(&o);
	o.size = offsetof(bnfold_options, inline_external);
	o.threads = -7;           /* invalid, were it read */
	o.max_new_bytes = 1;      /* would refuse every new tensor */
	o.replace_input = true;
	o.sync = (bnfold_sync)99;
	OK(bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_OK && util_same(out_path, want.out, want.out_len),
	   "options of size %zu: the fields past it are not read, the fold is the default one (%s)", o.size, e.message);
	unlink(out_path);
	o.tolerance = 0;
	OK(bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_E_VERIFY && !util_exists(out_path),
	   "options of size %zu: tolerance, within it, is read", o.size);
	o.tolerance = -1;
	util_write(copy, in, len);
	OK(bnfold_fold_file(copy, copy, &o, NULL, &e) == BNFOLD_E_INVALID && util_same(copy, in, len) &&
	   good_message(&e, copy) && strstr(e.message, "overwrite"),
	   "options of size %zu: replace_input past it stays false: refusing to overwrite the input", o.size);
	unlink(copy);
	folded_free(&want);
	free(in);
}

static void test_in_place_and_tempfile(void)
{
	char in_path[1024], copy[1024], out_path[1024], data[1024];
	bnfold_options o;
	bnfold_error e;
	struct temps t = {0};
	size_t len;
	unsigned char *in;
	struct folded want;
	int before;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(copy, sizeof(copy), tmp, "inplace.onnx");
	path_in(out_path, sizeof(out_path), tmp, "cb-out.onnx");
	in = util_read(in_path, &len);
	fold_buf(in, len, "demo", NULL, &want);
	before = util_count_entries(tmp);
	util_write(copy, in, len);
	OK(bnfold_fold_file(copy, copy, NULL, NULL, &e) == BNFOLD_E_INVALID && util_same(copy, in, len) &&
	   good_message(&e, copy), "fold_file over its own input: invalid_argument, the input untouched (%s)", e.message);
	bnfold_options_init(&o);
	o.replace_input = true;
	OK(bnfold_fold_file(copy, copy, &o, NULL, &e) == BNFOLD_OK && util_same(copy, want.out, want.out_len) &&
	   util_count_entries(tmp) == before + 1, "with replace_input it folds in place, no temp file left");
	unlink(copy);

	o.replace_input = false;
	o.tempfile = on_tempfile;
	o.tempfile_ctx = &t;
	o.sync = BNFOLD_SYNC_NEVER;
	OK(bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_OK && util_same(out_path, want.out, want.out_len),
	   "sync never: the same output");
	OK(t.created == 1 && t.released == 1 && t.existed == 1 && t.in_dir == 1 && !util_exists(t.last),
	   "tempfile callback: one temp file in the output's folder, announced once it exists, released once renamed (%s)",
	   t.last);
	unlink(out_path);

	/* write_file: through a temp file, nothing left on error. */
	path_in(data, sizeof(data), tmp, "report.json");
	OK(bnfold_write_file(data, "{}\n", 3, NULL, &e) == BNFOLD_OK && e.code == 0 && util_same(data, "{}\n", 3),
	   "write_file writes the bytes");
	unlink(data);
	path_in(data, sizeof(data), tmp, "no-such-dir/report.json");
	OK(bnfold_write_file(data, "{}\n", 3, NULL, &e) == BNFOLD_E_IO && good_message(&e, data) &&
	   util_count_entries(tmp) == before, "write_file into a missing folder: io_error naming the path (%s)", e.message);
	folded_free(&want);
	free(in);
}

static void host_handler(int sig)
{
	(void)sig;
}

/* A program's signal handlers and mask are its own: a call changes neither. */
/* Output to "-" goes after what the program has printed but not flushed. */
static void test_stdout_order(void)
{
	char path[1024];
	bnfold_error e;
	bnfold_status st;
	int saved, fd;

	path_in(path, sizeof(path), tmp, "stdout.bin");
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (saved < 0 || fd < 0 || dup2(fd, 1) < 0) {
		perror("redirecting stdout");
		exit(1);
	}
	close(fd);
	setvbuf(stdout, NULL, _IOFBF, BUFSIZ); /* as a program's stdout to a file or pipe is */
	fputs("pending ", stdout);
	st = bnfold_write_file("-", "model", 5, NULL, &e);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	OK(st == BNFOLD_OK && util_same(path, "pending model", 13),
	   "write_file to \"-\": the program's unflushed stdout comes first (%s)", bnfold_status_name(st));
	unlink(path);
}

static void test_signals_untouched(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGBUS};
	struct sigaction mine, old[4], now;
	sigset_t mask_before, mask_after;
	char in_path[1024], out_path[1024];
	int kept = 0;

	memset(&mine, 0, sizeof(mine));
	mine.sa_handler = host_handler;
	sigemptyset(&mine.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &mine, &old[i]);
	sigprocmask(SIG_SETMASK, NULL, &mask_before);
	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "signals-out.onnx");
	OK(bnfold_fold_file(in_path, out_path, NULL, NULL, NULL) == BNFOLD_OK, "demo.onnx folds with handlers set");
	sigprocmask(SIG_SETMASK, NULL, &mask_after);
	for (int i = 0; i < 4; i++) {
		sigaction(sigs[i], &old[i], &now);
		kept += now.sa_handler == host_handler;
	}
	OK(sigismember(&mask_before, SIGINT) == sigismember(&mask_after, SIGINT) &&
	   sigismember(&mask_before, SIGTERM) == sigismember(&mask_after, SIGTERM),
	   "fold_file leaves the signal mask as it was");
	OK(kept == 4,
	    "fold_file leaves the program's SIGINT, SIGTERM, SIGHUP and SIGBUS handlers in place (%d of 4 kept)", kept);
	unlink(out_path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_api_errors TESTDATA\n");
		return 2;
	}
	testdata = argv[1];
	if (util_mkdtemp(tmp, sizeof(tmp), "api_errors") < 0) {
		perror("mkdtemp");
		return 1;
	}
	test_bad_buffers();
	test_invalid_args();
	test_file_errors();
	test_verify_failure();
	test_old_caller();
	test_in_place_and_tempfile();
	test_stdout_order();
	test_signals_untouched();
	OK(util_count_entries(tmp) == 0, "nothing left in the test's folder");
	util_rmdir(tmp);
	return tap_done();
}
