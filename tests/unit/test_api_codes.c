/* The code of each kind of error of the public API, as a program on top of
 * the library sees it (bnfold.h alone): a file that cannot be opened or
 * written is io_error, an input that is not a well-formed model not_onnx,
 * a choice of the caller that cannot work invalid_argument, a failed check
 * verify_failed; every message names the file or buffer, and nothing is
 * left behind.
 *   test_api_codes TESTDATA */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_util.h"
#include "bnfold.h"

static const char *testdata;
static char tmp[512];

/* Entries of tmp other than . and .. */
static int entries(void)
{
	return util_count_entries(tmp);
}

static void in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
}

static void in_testdata(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", testdata, name);
}

/* The message promised by bnfold.h: one line that starts "NAME: ". */
static int names(const bnfold_error *e, const char *name)
{
	size_t n = strlen(name);
	return !strchr(e->message, '\n') && strncmp(e->message, name, n) == 0 && strncmp(e->message + n, ": ", 2) == 0;
}

/* ---------------------------------------------------------------- inputs */

static void test_missing_input(void)
{
	char missing[1024], out[1024];
	bnfold_result *r = NULL;
	bnfold_error e;
	bnfold_status st;
	int before = entries();

	in_tmp(missing, sizeof(missing), "missing.onnx");
	in_tmp(out, sizeof(out), "out.onnx");
	st = bnfold_fold_file(missing, out, NULL, &r, &e);
	OK(st == BNFOLD_E_IO && e.code == BNFOLD_E_IO && names(&e, missing) && strstr(e.message, "No such file") &&
	   !r, "fold_file of a missing file: io_error naming it (%s: %s)", bnfold_status_name(st), e.message);
	OK(entries() == before, "... nothing written");
	st = bnfold_inspect_file(missing, NULL, &r, &e);
	OK(st == BNFOLD_E_IO && names(&e, missing) && !r, "inspect_file of a missing file: io_error naming it (%s)",
	   bnfold_status_name(st));
}

static void test_directory_input(void)
{
	char dir[1024], out[1024];
	bnfold_error e;
	bnfold_status st;

	in_tmp(dir, sizeof(dir), "a-folder.onnx");
	in_tmp(out, sizeof(out), "out.onnx");
	mkdir(dir, 0700);
	st = bnfold_fold_file(dir, out, NULL, NULL, &e);
	OK(st == BNFOLD_E_IO && names(&e, dir) && strstr(e.message, "is a directory") && !util_exists(out),
	   "fold_file of a directory: io_error naming it, nothing written (%s: %s)", bnfold_status_name(st),
	   e.message);
	rmdir(dir);
}

/* fold_file and inspect_file of path, streaming or not: not_onnx naming
 * path, no result, nothing written. */
static void expect_not_onnx(const char *path, const char *what)
{
	char out[1024];
	bnfold_options o;
	bnfold_result *r = NULL;
	bnfold_error e;
	int before = entries();

	in_tmp(out, sizeof(out), "out.onnx");
	bnfold_options_init(&o);
	for (int stream = 1; stream >= 0; stream--) {
		bnfold_status st, si;
		o.stream = stream;
		st = bnfold_fold_file(path, out, &o, &r, &e);
		OK(st == BNFOLD_E_NOT_ONNX && e.code == BNFOLD_E_NOT_ONNX && names(&e, path) && !r && entries() == before,
		   "%s%s: fold_file gives not_onnx naming it, nothing written (%s: %s)", what,
		   stream ? "" : " (no stream)", bnfold_status_name(st), e.message);
		si = bnfold_inspect_file(path, &o, &r, &e);
		OK(si == BNFOLD_E_NOT_ONNX && names(&e, path) && !r, "%s%s: inspect_file gives not_onnx (%s)", what,
		   stream ? "" : " (no stream)", bnfold_status_name(si));
	}
}

static void test_not_onnx(void)
{
	char demo[1024], path[1024];
	unsigned char junk[4096], *model;
	unsigned z = 8;
	size_t len;

	for (size_t i = 0; i < sizeof(junk); i++) {
		z = z * 1103515245u + 12345u;
		junk[i] = (unsigned char)(z >> 16);
	}
	in_tmp(path, sizeof(path), "garbage.onnx");
	util_write(path, junk, sizeof(junk));
	expect_not_onnx(path, "4 KiB of random bytes");
	util_write(path, "", 0);
	expect_not_onnx(path, "an empty file");
	in_testdata(demo, sizeof(demo), "demo.onnx");
	model = util_read(demo, &len);
	OK(model && len > 100, "demo.onnx is read (%zu bytes)", len);
	if (model) {
		util_write(path, model, len / 2);
		expect_not_onnx(path, "demo.onnx cut in half");
		util_write(path, model, len - 1);
		expect_not_onnx(path, "demo.onnx without its last byte");
	}
	free(model);
	unlink(path);
}

static void test_buffers(void)
{
	static const unsigned char junk[] = "\x1f\x8b\x08\x00 not a model at all";
	void *out = &out;
	size_t out_len = 1;
	bnfold_result *r = NULL;
	bnfold_error e;
	bnfold_status st;

	st = bnfold_fold_buffer(junk, sizeof(junk), "garbage.bin", &out, &out_len, NULL, &r, &e);
	OK(st == BNFOLD_E_NOT_ONNX && e.code == BNFOLD_E_NOT_ONNX && names(&e, "garbage.bin") && !out && !out_len && !r,
	   "fold_buffer of garbage: not_onnx naming the buffer, no output (%s: %s)", bnfold_status_name(st), e.message);
	st = bnfold_fold_buffer(junk, sizeof(junk), NULL, &out, &out_len, NULL, NULL, &e);
	OK(st == BNFOLD_E_NOT_ONNX && names(&e, "<buffer>"), "... without a name: named <buffer> (%s)", e.message);
	st = bnfold_inspect_buffer(junk, 3, "three", NULL, &r, &e);
	OK(st == BNFOLD_E_NOT_ONNX && names(&e, "three") && !r, "inspect_buffer of 3 bytes of garbage: not_onnx (%s)",
	   e.message);
}

/* ---------------------------------------------------------------- outputs */

static void test_output_errors(void)
{
	char demo[1024], out[1024], dir[1024];
	bnfold_result *r = NULL;
	bnfold_error e;
	bnfold_status st;
	int before = entries();

	in_testdata(demo, sizeof(demo), "demo.onnx");
	in_tmp(dir, sizeof(dir), "no-such-folder");
	in_tmp(out, sizeof(out), "no-such-folder/out.onnx");
	st = bnfold_fold_file(demo, out, NULL, &r, &e);
	OK(st == BNFOLD_E_IO && e.code == BNFOLD_E_IO && names(&e, out) && !r,
	   "fold_file into a folder that does not exist: io_error naming the output (%s: %s)", bnfold_status_name(st),
	   e.message);
	OK(!util_exists(dir) && entries() == before, "... nothing left");
	st = bnfold_write_file(out, "{}\n", 3, NULL, &e);
	OK(st == BNFOLD_E_IO && names(&e, out) && entries() == before,
	   "write_file into a folder that does not exist: io_error naming it, nothing left (%s)", bnfold_status_name(st));

	mkdir(dir, 0700);
	st = bnfold_fold_file(demo, dir, NULL, NULL, &e);
	OK(st == BNFOLD_E_IO && names(&e, dir) && strstr(e.message, "is a directory"),
	   "fold_file onto a folder: io_error naming it (%s: %s)", bnfold_status_name(st), e.message);
	rmdir(dir);
}

/* ---------------------------------------------------------------- external data */

static size_t put_varint(unsigned char *p, unsigned long long v)
{
	size_t n = 0;
	do {
		p[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

/* A length-delimited field: its tag byte, length and bytes at p. */
static size_t put_field(unsigned char *p, unsigned char tag, const void *data, size_t len)
{
	size_t n = 1;
	p[0] = tag;
	n += put_varint(p + n, len);
	memcpy(p + n, data, len);
	return n + len;
}

/* A model (IR 8) whose one initializer 'w', float[4], lies in "w.data"
 * beside it: ModelProto.graph (7) > GraphProto.initializer (5) >
 * TensorProto dims (1), data_type (2), name (8), external_data (13),
 * data_location (14). */
static size_t external_model(unsigned char *buf)
{
	unsigned char entry[64], tensor[128], graph[192];
	size_t ne = 0, nt = 0, ng = 0, nm = 0;

	ne += put_field(entry + ne, 0x0a, "location", 8);
	ne += put_field(entry + ne, 0x12, "w.data", 6);
	memcpy(tensor, "\x08\x04\x10\x01", 4);
	nt = 4;
	nt += put_field(tensor + nt, 0x42, "w", 1);
	nt += put_field(tensor + nt, 0x6a, entry, ne);
	memcpy(tensor + nt, "\x70\x01", 2);
	nt += 2;
	ng += put_field(graph + ng, 0x12, "g", 1);
	ng += put_field(graph + ng, 0x2a, tensor, nt);
	memcpy(buf, "\x08\x08", 2);
	nm = 2;
	nm += put_field(buf + nm, 0x3a, graph, ng);
	return nm;
}

static void test_external_data(void)
{
	static const float w[4] = {1, 2, 3, 4};
	char model[1024], data[1024], out[1024], out_data[1024], clash[1024];
	unsigned char bytes[512];
	bnfold_error e;
	bnfold_status st;
	int saved, null, before;

	in_tmp(model, sizeof(model), "ext.onnx");
	in_tmp(data, sizeof(data), "w.data");
	in_tmp(out, sizeof(out), "ext-out.onnx");
	in_tmp(out_data, sizeof(out_data), "ext-out.onnx.data");
	in_tmp(clash, sizeof(clash), "w");
	util_write(model, bytes, external_model(bytes));
	util_write(data, w, sizeof(w));
	before = entries();

	/* The model itself is fine: its weights go to OUTPUT.data. */
	st = bnfold_fold_file(model, out, NULL, NULL, &e);
	OK(st == BNFOLD_OK && util_exists(out) && util_exists(out_data), "a model with external data folds to a file and its .data (%s)",
	   e.message);
	unlink(out);
	unlink(out_data);

	/* Standard output cannot have a data file beside it (nothing may reach
	 * it: the TAP stream is there). */
	fflush(stdout);
	saved = dup(1);
	null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	close(null);
	st = bnfold_fold_file(model, "-", NULL, NULL, &e);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	OK(st == BNFOLD_E_INVALID && e.code == BNFOLD_E_INVALID && names(&e, "-") && strstr(e.message, "external data"),
	   "external data folded to stdout without inline_external: invalid_argument (%s: %s)", bnfold_status_name(st),
	   e.message);

	/* OUTPUT.data would be the input's own data file. */
	st = bnfold_fold_file(model, clash, NULL, NULL, &e);
	OK(st == BNFOLD_E_INVALID && names(&e, clash) && strstr(e.message, "would replace"),
	   "an output whose data file is the input's: invalid_argument (%s: %s)", bnfold_status_name(st), e.message);
	OK(!util_exists(clash) && entries() == before && util_same(data, w, sizeof(w)), "... nothing written, the input's data left");

	/* The data file is gone: the input cannot be read. */
	unlink(data);
	st = bnfold_fold_file(model, out, NULL, NULL, &e);
	OK(st == BNFOLD_E_IO && names(&e, model) && strstr(e.message, "w.data") && !util_exists(out),
	   "a missing external data file: io_error naming the model (%s: %s)", bnfold_status_name(st), e.message);
	unlink(model);
}

/* ---------------------------------------------------------------- verification */

static void test_verify_failure(const char *fixture)
{
	char in[1024], out[1024];
	bnfold_options o;
	bnfold_result *r = NULL;
	bnfold_counts n;
	bnfold_error e;
	bnfold_status st;
	int before = entries();

	in_testdata(in, sizeof(in), fixture);
	in_tmp(out, sizeof(out), "verify-out.onnx");
	bnfold_options_init(&o);
	o.tolerance = 0;
	st = bnfold_fold_file(in, out, &o, &r, &e);
	bnfold_result_counts(r, &n);
	OK(st == BNFOLD_E_VERIFY && e.code == BNFOLD_E_VERIFY && names(&e, in) && strstr(e.message, "fails verification") &&
	   r && n.verify_failed > 0, "%s with tolerance 0: verify_failed naming it, with a result (%s: %s)", fixture,
	   bnfold_status_name(st), e.message);
	OK(!util_exists(out) && entries() == before, "... nothing written");
	bnfold_result_free(r);
	o.tolerance = -1;
	st = bnfold_inspect_file(in, &o, NULL, &e);
	OK(st == BNFOLD_OK && e.code == 0 && e.message[0] == '\0', "%s with the default tolerance: ok, no message",
	   fixture);
}

int main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");

	if (argc != 2) {
		fprintf(stderr, "usage: test_api_codes TESTDATA\n");
		return 2;
	}
	testdata = argv[1];
	snprintf(tmp, sizeof(tmp), "%s/bnfold-codes-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	test_missing_input();
	test_directory_input();
	test_not_onnx();
	test_buffers();
	test_output_errors();
	test_external_data();
	test_verify_failure("demo.onnx");
	test_verify_failure("conv_bn_fp16.onnx");
	OK(entries() == 0, "nothing left in the test's folder");
	rmdir(tmp);
	return tap_done();
}
