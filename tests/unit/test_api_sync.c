/* The durability policy through the public API: which outputs are
 * fsync'd before their rename.  This program defines fsync and fdatasync
 * itself, so the library's calls land here and are counted (for files in
 * the test's folder only) instead of reaching the disk.
 *   test_api_sync TESTDATA */
#include <limits.h>
#include <stddef.h>
#include <unistd.h>

#include "api_util.h"

static const char *testdata;
static char tmp[512], tmp_real[PATH_MAX];
static int syncs; /* fsync and fdatasync calls on files in tmp */

/* Count the call when fd is a file in tmp; succeed without syncing. */
static int count_sync(int fd)
{
	char link[64], path[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		if (strncmp(path, tmp_real, strlen(tmp_real)) == 0 && path[strlen(tmp_real)] == '/')
			syncs++;
	}
	return 0;
}

int fsync(int fd)
{
	return count_sync(fd);
}

int fdatasync(int fd)
{
	return count_sync(fd);
}

/* Fold demo.onnx from in_path to out_path with o: whether it succeeded,
 * wrote want and called sync `expect` times. */
static int fold_syncs(const char *in_path, const char *out_path, const bnfold_options *o, const struct folded *want,
		      int expect)
{
	bnfold_error e;
	int ok;

	syncs = 0;
	ok = bnfold_fold_file(in_path, out_path, o, NULL, &e) == BNFOLD_OK;
	if (!ok)
		printf("# %s\n", e.message);
	if (syncs != expect)
		printf("#   %d sync calls, want %d\n", syncs, expect);
	return ok && syncs == expect && util_same(out_path, want->out, want->out_len);
}

static void test_fold_file(void)
{
	char in_path[1024], out_path[1024], copy[1024];
	static const char old[] = "an earlier output\n";
	bnfold_options o;
	unsigned char *in;
	size_t len;
	struct folded want;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "out.onnx");
	path_in(copy, sizeof(copy), tmp, "in-place.onnx");
	in = util_read(in_path, &len);
	fold_buf(in, len, "demo", NULL, &want);

	bnfold_options_init(&o);
	OK(o.sync == BNFOLD_SYNC_AUTO && BNFOLD_SYNC_ALWAYS == 0 && BNFOLD_SYNC_NEVER == 1,
	   "the default is BNFOLD_SYNC_AUTO; the older values keep their numbers");
	OK(fold_syncs(in_path, out_path, &o, &want, 0), "AUTO, a new file: written, not synced");
	OK(fold_syncs(in_path, out_path, &o, &want, 1), "AUTO, over an existing file: synced once");
	OK(fold_syncs(in_path, out_path, NULL, &want, 1), "no options (the defaults), over an existing file: synced");
	unlink(out_path);
	OK(fold_syncs(in_path, out_path, NULL, &want, 0), "no options, a new file: not synced");
	unlink(out_path);

	util_write(copy, in, len);
	o.replace_input = true;
	OK(fold_syncs(copy, copy, &o, &want, 1), "AUTO, in place: synced once");
	o.replace_input = false;
	unlink(copy);

	o.sync = BNFOLD_SYNC_ALWAYS;
	OK(fold_syncs(in_path, out_path, &o, &want, 1), "ALWAYS, a new file: synced");
	o.sync = BNFOLD_SYNC_NEVER;
	util_write(out_path, old, sizeof(old) - 1);
	OK(fold_syncs(in_path, out_path, &o, &want, 0), "NEVER, over an existing file: not synced");
	util_write(copy, in, len);
	o.replace_input = true;
	OK(fold_syncs(copy, copy, &o, &want, 0), "NEVER, in place: not synced");
	unlink(copy);
	unlink(out_path);

	/* A caller built before the field existed gets the default, AUTO. */
	bnfold_options_init(&o);
	o.size = offsetof(bnfold_options, sync);
	o.sync = BNFOLD_SYNC_NEVER; /* past its size: not read */
	OK(fold_syncs(in_path, out_path, &o, &want, 0) && fold_syncs(in_path, out_path, &o, &want, 1),
	   "options of size %zu (no sync field): AUTO, a new file not synced, a replaced one synced", o.size);
	unlink(out_path);
	folded_free(&want);
	free(in);
}

static void test_invalid_and_write_file(void)
{
	char in_path[1024], out_path[1024];
	static const char text[] = "{\"report\": 1}\n";
	bnfold_options o;
	bnfold_error e;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	path_in(out_path, sizeof(out_path), tmp, "out.onnx");
	bnfold_options_init(&o);
	o.sync = (bnfold_sync)3;
	OK(bnfold_fold_file(in_path, out_path, &o, NULL, &e) == BNFOLD_E_INVALID && !util_exists(out_path) &&
	   strstr(e.message, "sync"), "a sync value outside bnfold_sync: invalid_argument, nothing written (%s)",
	   e.message);
	OK(bnfold_write_file(out_path, text, sizeof(text) - 1, &o, &e) == BNFOLD_E_INVALID && !util_exists(out_path),
	   "write_file with that value: invalid_argument too");

	bnfold_options_init(&o);
	syncs = 0;
	OK(bnfold_write_file(out_path, text, sizeof(text) - 1, &o, &e) == BNFOLD_OK && syncs == 0 &&
	   util_same(out_path, text, sizeof(text) - 1), "write_file, AUTO, a new file: not synced");
	syncs = 0;
	OK(bnfold_write_file(out_path, text, sizeof(text) - 1, &o, &e) == BNFOLD_OK && syncs == 1,
	   "write_file, AUTO, over a file: synced (%d)", syncs);
	unlink(out_path);
	o.sync = BNFOLD_SYNC_ALWAYS;
	syncs = 0;
	OK(bnfold_write_file(out_path, text, sizeof(text) - 1, &o, &e) == BNFOLD_OK && syncs == 1,
	   "write_file, ALWAYS, a new file: synced (%d)", syncs);
	o.sync = BNFOLD_SYNC_NEVER;
	syncs = 0;
	OK(bnfold_write_file(out_path, text, sizeof(text) - 1, &o, &e) == BNFOLD_OK && syncs == 0,
	   "write_file, NEVER, over a file: not synced (%d)", syncs);
	unlink(out_path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_api_sync TESTDATA\n");
		return 2;
	}
	testdata = argv[1];
	if (util_mkdtemp(tmp, sizeof(tmp), "api-sync") < 0) {
		perror("mkdtemp");
		return 1;
	}
	if (!realpath(tmp, tmp_real)) { /* /proc/self/fd shows paths resolved */
		perror("realpath");
		return 1;
	}
	test_fold_file();
	test_invalid_and_write_file();
	OK(util_count_entries(tmp) == 0, "nothing left in the test's folder");
	util_rmdir(tmp);
	return tap_done();
}
