/* The public API (bnfold.h) as a program on top of the library sees it:
 * defaults, version, names, the same bytes and counts from buffers and
 * files over every fixture of testdata/expected.json, inspecting against
 * folding, the JSON report, the result's views, and options that change
 * how but never what.  Errors are in test_api_errors.c.
 *   test_api TESTDATA */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "api_util.h"

static const char *testdata;
static char tmp[512];

static void test_defaults(void)
{
	bnfold_options o;
	unsigned char raw[sizeof(bnfold_options) + 16];
	size_t small = offsetof(bnfold_options, inline_external);
	int untouched = 1;

	memset(&o, 0xa5, sizeof(o));
	bnfold_options_init(&o);
	OK(o.size == sizeof(o), "options_init sets size to sizeof(bnfold_options)");
	OK(!o.fold_overridable && o.verify && o.tolerance < 0 && o.stream && !o.inline_external &&
	   o.sync == BNFOLD_SYNC_AUTO && !o.replace_input && o.threads == 0 && !o.no_simd && o.max_new_bytes == 0 &&
	   o.tempfile == NULL && o.tempfile_ctx == NULL,
	   "options_init: the defaults the header documents");

	/* An old caller's struct is smaller: nothing past its size is written. */
	memset(raw, 0x5a, sizeof(raw));
	bnfold_options_init_sized((bnfold_options *)(void *)raw, small);
	for (size_t i = small; i < sizeof(raw); i++)
		untouched = untouched && raw[i] == 0x5a;
	OK(untouched && ((bnfold_options *)(void *)raw)->size == small,
	   "options_init_sized(%zu) writes %zu bytes and sets size", small, small);
}

static void test_names(void)
{
	static const char *const names[] = {"ok", "invalid_argument", "io_error", "not_onnx", "out_of_memory",
					    "verify_failed"};
	char v[32];
	int all = 1, distinct = 1;
	size_t n = bnfold_reason_count();

	snprintf(v, sizeof(v), "%d.%d.%d", BNFOLD_VERSION_MAJOR, BNFOLD_VERSION_MINOR, BNFOLD_VERSION_PATCH);
	OK(strcmp(bnfold_version(), BNFOLD_VERSION_STRING) == 0 && strcmp(v, BNFOLD_VERSION_STRING) == 0,
	   "bnfold_version() == BNFOLD_VERSION_STRING == MAJOR.MINOR.PATCH (%s)", bnfold_version());
	OK(bnfold_version_number() == BNFOLD_VERSION_NUMBER &&
	   BNFOLD_VERSION_NUMBER == BNFOLD_VERSION_MAJOR * 10000 + BNFOLD_VERSION_MINOR * 100 + BNFOLD_VERSION_PATCH,
	   "bnfold_version_number() == BNFOLD_VERSION_NUMBER (%u)", bnfold_version_number());
	OK(BNFOLD_OK == 0 && BNFOLD_E_INVALID == 1 && BNFOLD_E_IO == 2 && BNFOLD_E_NOT_ONNX == 3 &&
	   BNFOLD_E_NOMEM == 4 && BNFOLD_E_VERIFY == 5, "status codes keep their numbers");
	for (int i = 0; i < 6; i++)
		all = all && strcmp(bnfold_status_name(i), names[i]) == 0;
	OK(all, "status names: ok, invalid_argument, io_error, not_onnx, out_of_memory, verify_failed");
	OK(strcmp(bnfold_status_name(-1), "unknown") == 0 && strcmp(bnfold_status_name(6), "unknown") == 0 &&
	   strcmp(bnfold_status_name(1000), "unknown") == 0, "status name of any other value: unknown");

	for (size_t i = 0; i < n; i++) {
		const char *c = bnfold_reason_code(i), *t = bnfold_reason_text(i);
		all = all && c && t && *c && *t && strcmp(c, "fold") != 0;
		for (size_t j = 0; c && j < i; j++)
			distinct = distinct && strcmp(c, bnfold_reason_code(j)) != 0;
	}
	OK(n >= 10 && all && distinct, "%zu reason codes, distinct, each with a text, \"fold\" not among them", n);
	OK(bnfold_reason_code(n) == NULL && bnfold_reason_text(n) == NULL, "reason code and text past the end: NULL");
	OK(bnfold_reason_code((size_t)-1) == NULL && bnfold_reason_text((size_t)-1) == NULL,
	   "reason code and text of SIZE_MAX: NULL");
}

/* ---------------------------------------------------------------- fixtures */

static size_t json_size(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? (size_t)v->valuedouble : SIZE_MAX;
}


/* The display names of the entry's fusions, in the order of the result's
 * views (BN fusions in "fusions", Mul/Add in "affine_fusions"). */
static int labels_ok(const cJSON *j, const bnfold_result *r)
{
	const cJSON *bn = cJSON_GetObjectItemCaseSensitive(j, "fusions");
	const cJSON *aff = cJSON_GetObjectItemCaseSensitive(j, "affine_fusions");
	int i_bn = 0, i_aff = 0;

	for (size_t i = 0; i < bnfold_result_n_fusions(r); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(r, i);
		const cJSON *e = cJSON_GetArrayItem(f->is_bn ? bn : aff, f->is_bn ? i_bn++ : i_aff++);
		const cJSON *node = cJSON_GetObjectItemCaseSensitive(e, f->is_bn ? "bn_label" : "node_label");
		const cJSON *layer = cJSON_GetObjectItemCaseSensitive(e, "layer_label");
		if (!cJSON_IsString(node) || strcmp(node->valuestring, f->node_label) || !cJSON_IsString(layer) ||
		    strcmp(layer->valuestring, f->layer_label))
			return 0;
	}
	return 1;
}

/* The report entry: JSON naming the input (and output), with the counts
 * and the display names of the result; the tool and the options belong to
 * the program's document around it. */
static int report_ok(bnfold_result *r, const char *input, const char *output)
{
	const char *text = bnfold_result_json(r);
	cJSON *j = text ? cJSON_Parse(text) : NULL;
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "output");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "counts");
	bnfold_counts n;
	int ok;

	bnfold_result_counts(r, &n);
	ok = j && cJSON_IsString(in) && strcmp(in->valuestring, input) == 0 &&
	     (output ? cJSON_IsString(out) && strcmp(out->valuestring, output) == 0 : !cJSON_IsString(out)) &&
	     json_size(c, "bn_found") == n.bn_found && json_size(c, "folded") == n.bn_folded &&
	     json_size(c, "skipped") == n.skipped && json_size(c, "affine_folded") == n.affine_folded &&
	     !cJSON_GetObjectItemCaseSensitive(j, "tool") && !cJSON_GetObjectItemCaseSensitive(j, "options") &&
	     labels_ok(j, r) && bnfold_result_json(r) == text;
	cJSON_Delete(j);
	return ok;
}

/* The reports of a and b are the same but for the names of the input and
 * the output (a buffer's and a file's, say). */
static int same_report(bnfold_result *a, bnfold_result *b)
{
	const char *ta = bnfold_result_json(a), *tb = bnfold_result_json(b);
	cJSON *ja = ta ? cJSON_Parse(ta) : NULL, *jb = tb ? cJSON_Parse(tb) : NULL;
	int same;

	cJSON_DeleteItemFromObjectCaseSensitive(ja, "input");
	cJSON_DeleteItemFromObjectCaseSensitive(ja, "output");
	cJSON_DeleteItemFromObjectCaseSensitive(jb, "input");
	cJSON_DeleteItemFromObjectCaseSensitive(jb, "output");
	same = ja && jb && cJSON_Compare(ja, jb, true);
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	return same;
}

/* The skips of BNs (bn) or of Mul/Add nodes (!bn) by reason, as want
 * says ({reason: count}, or NULL for none). */
static int skips_as_expected(const bnfold_result *r, const cJSON *want, bool bn)
{
	size_t total = 0, all = 0;
	const cJSON *w;

	cJSON_ArrayForEach(w, want)
	{
		size_t n = 0;
		for (size_t i = 0; i < bnfold_result_n_skips(r); i++)
			n += bnfold_result_skip(r, i)->is_bn == bn && strcmp(bnfold_result_skip(r, i)->reason, w->string) == 0;
		if (n != (size_t)w->valuedouble)
			return 0;
		total += n;
	}
	for (size_t i = 0; i < bnfold_result_n_skips(r); i++)
		all += bnfold_result_skip(r, i)->is_bn == bn;
	return total == all;
}


/* One fixture through fold_buffer (with its weights read in place, and
 * all in memory), fold_file, inspect_buffer, inspect_file, and fold_buffer
 * again on the output. */
static void test_fixture(const cJSON *fx, const char *file, const bnfold_options *o)
{
	char in_path[1024], out_path[1024];
	size_t len, file_len = 0;
	unsigned char *in, *file_out = NULL;
	struct folded b, again, whole;
	bnfold_options ow = *o;
	bnfold_result *rf = NULL, *ri = NULL, *rif = NULL;
	bnfold_counts nf, ni, nif, want;
	bnfold_status sf, si, sif;
	const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(fx, "skipped"), *s;

	path_in(in_path, sizeof(in_path), testdata, file);
	path_in(out_path, sizeof(out_path), tmp, "fixture-out.onnx");
	if (!(in = util_read(in_path, &len))) {
		OK(0, "%s: read", file);
		return;
	}
	fold_buf(in, len, file, o, &b);
	sf = bnfold_fold_file(in_path, out_path, o, &rf, NULL);
	if (sf == BNFOLD_OK)
		file_out = util_read(out_path, &file_len);
	unlink(out_path);
	OK(b.st == BNFOLD_OK && sf == BNFOLD_OK && file_out && b.out_len == file_len &&
	   memcmp(b.out, file_out, file_len) == 0,
	   "%s: fold_buffer and fold_file give the same %zu bytes", file, b.out_len);
	OK(sf == BNFOLD_OK && same_report(b.r, rf), "%s: fold_buffer and fold_file give the same report", file);
	ow.stream = false;
	fold_buf(in, len, file, &ow, &whole);
	OK(whole.st == BNFOLD_OK && whole.out_len == b.out_len && memcmp(whole.out, b.out, b.out_len) == 0 &&
	   same_counts(&whole.n, &b.n),
	   "%s: fold_buffer with every weight in memory (stream off): the same bytes and counts", file);
	folded_free(&whole);

	memset(&want, 0, sizeof(want));
	want.bn_found = json_size(fx, "bn_before");
	want.bn_folded = json_size(fx, "folded");
	cJSON_ArrayForEach(s, skipped) want.skipped += (size_t)s->valuedouble;
	bnfold_result_counts(rf, &nf);
	OK(b.n.bn_found == want.bn_found && b.n.bn_folded == want.bn_folded && b.n.skipped == want.skipped &&
	   (!cJSON_GetObjectItemCaseSensitive(fx, "affine_folded") || b.n.affine_folded == json_size(fx, "affine_folded")) &&
	   skips_as_expected(b.r, skipped, true) &&
	   skips_as_expected(b.r, cJSON_GetObjectItemCaseSensitive(fx, "affine_skipped"), false) &&
	   same_counts(&b.n, &nf) && b.n.verify_failed == 0,
	   "%s: counts as expected.json says (found %zu, folded %zu, skipped %zu), the same from the file", file,
	   b.n.bn_found, b.n.bn_folded, b.n.skipped);
	if ((b.n.bn_folded == 0 && b.n.affine_folded == 0) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fx, "byte_identical")))
		OK(b.out_len == len && memcmp(b.out, in, len) == 0 && b.n.bn_folded == 0 && b.n.affine_folded == 0,
		   "%s: nothing folds, so the output is the input byte for byte", file);

	si = bnfold_inspect_buffer(in, len, file, o, &ri, NULL);
	sif = bnfold_inspect_file(in_path, o, &rif, NULL);
	bnfold_result_counts(ri, &ni);
	bnfold_result_counts(rif, &nif);
	OK(si == BNFOLD_OK && sif == BNFOLD_OK && ni.bn_found == b.n.bn_found && ni.bn_folded == b.n.bn_folded &&
	   ni.affine_folded == b.n.affine_folded && ni.skipped == b.n.skipped && same_counts(&ni, &nif),
	   "%s: inspect_buffer and inspect_file count what the fold did", file);
	OK(report_ok(b.r, file, NULL) && report_ok(rf, in_path, out_path) && report_ok(ri, file, NULL),
	   "%s: the reports are JSON naming the input (and output) with the counts of the result", file);
	OK(same_report(ri, rif), "%s: inspect_buffer and inspect_file give the same report", file);

	fold_buf(b.out, b.out_len, "again", o, &again);
	OK(again.st == BNFOLD_OK && again.n.bn_found == b.n.skipped && again.n.skipped == b.n.skipped,
	   "%s: folding the output again finds only the %zu BatchNormalization left", file, b.n.skipped);

	folded_free(&again);
	folded_free(&b);
	bnfold_result_free(rf);
	bnfold_result_free(ri);
	bnfold_result_free(rif);
	free(file_out);
	free(in);
}

static void test_fixtures(void)
{
	char path[1024];
	size_t len;
	char *text;
	cJSON *root, *fx;
	int n = 0;

	path_in(path, sizeof(path), testdata, "expected.json");
	text = (char *)util_read(path, &len);
	root = text ? cJSON_ParseWithLength(text, len) : NULL;
	cJSON_ArrayForEach(fx, cJSON_GetObjectItemCaseSensitive(root, "fixtures"))
	{
		const cJSON *file = cJSON_GetObjectItemCaseSensitive(fx, "file"), *a;
		bnfold_options o;
		int known = 1;
		bnfold_options_init(&o);
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(fx, "args"))
		{
			if (cJSON_IsString(a) && strcmp(a->valuestring, "--fold-overridable") == 0)
				o.fold_overridable = true;
			else
				known = 0;
		}
		if (!known || !cJSON_IsString(file)) {
			printf("ok %d - # SKIP a fixture with options this test does not know\n", ++tap_n);
			continue;
		}
		test_fixture(fx, file->valuestring, &o);
		n++;
	}
	OK(n >= 80, "%d fixtures of testdata/expected.json", n);
	cJSON_Delete(root);
	free(text);
}

/* ---------------------------------------------------------------- results */

/* The op-type rows of demo.onnx (a resnet block: 3 Conv + BN pairs) and
 * the sizes of a buffer folded into out_len bytes. */
static void test_op_types(const bnfold_result *r, const bnfold_counts *n, size_t in_len, size_t out_len)
{
	size_t rows = bnfold_result_n_op_types(r), sum_before = 0, sum_after = 0, before, after, sz[4];
	const char *prev = "", *domain, *op;
	int sorted = 1, bn = 0;

	for (size_t i = 0; i < rows; i++) {
		if (bnfold_result_op_type(r, i, &domain, &op, &before, &after) < 0)
			break;
		sorted = sorted && strcmp(prev, op) < 0 && domain[0] == '\0';
		prev = op;
		sum_before += before;
		sum_after += after;
		bn += strcmp(op, "BatchNormalization") == 0 && before == 3 && after == 0;
	}
	OK(rows == 7 && sorted && bn == 1 && sum_before == n->nodes_before && sum_after == n->nodes_after,
	   "demo.onnx: 7 op types in order, BatchNormalization 3 -> 0, summing to nodes_before and nodes_after");
	OK(bnfold_result_op_type(r, rows, &domain, &op, &before, &after) == -1 &&
	   bnfold_result_op_type(r, 0, NULL, NULL, NULL, NULL) == 0 && bnfold_result_n_op_types(NULL) == 0 &&
	   bnfold_result_op_type(NULL, 0, NULL, NULL, NULL, NULL) == -1,
	   "op type past the end or of a NULL result: -1; NULL pointers are not filled");
	bnfold_result_sizes(r, &sz[0], &sz[1], &sz[2], &sz[3]);
	OK(sz[0] == in_len && sz[1] == 0 && sz[2] == out_len && sz[3] == 0,
	   "sizes of a buffer: %zu in, %zu out, no external data", sz[0], sz[2]);
	bnfold_result_sizes(NULL, &sz[0], &sz[1], &sz[2], &sz[3]);
	bnfold_result_sizes(r, NULL, NULL, NULL, NULL);
	OK(sz[0] == 0 && sz[1] == 0 && sz[2] == 0 && sz[3] == 0, "sizes of a NULL result: 0");
}

static void test_result_views(void)
{
	char in_path[1024];
	size_t len;
	unsigned char *in;
	struct folded b;
	bnfold_counts none;
	int all = 1;
	unsigned seen = 0;

	path_in(in_path, sizeof(in_path), testdata, "demo.onnx");
	in = util_read(in_path, &len);
	fold_buf(in, len, NULL, NULL, &b);
	OK(b.st == BNFOLD_OK && b.e.code == BNFOLD_OK && b.e.message[0] == '\0',
	   "demo.onnx with NULL options: OK, code 0 and message \"\"");
	OK(bnfold_result_n_fusions(b.r) == 3 && bnfold_result_n_skips(b.r) == 0 && b.n.verified == 3,
	   "demo.onnx: 3 fusions, 3 verified, no skip");
	for (size_t i = 0; i < bnfold_result_n_fusions(b.r); i++) {
		const bnfold_fusion *f = bnfold_result_fusion(b.r, i);
		all = all && f->is_bn && strcmp(f->pattern, "conv_bn") == 0 && strcmp(f->graph, "resnet_block") == 0 &&
		      strcmp(f->layer_op, "Conv") == 0 && strcmp(f->node_op, "BatchNormalization") == 0 &&
		      strcmp(f->dtype, "float32") == 0 && f->channels > 0 && f->check.done && f->check.ok &&
		      f->check.max_rel_err <= f->check.tolerance && f->check.problem == NULL && f->model_order < 3;
		if (f->model_order < 3)
			seen |= 1u << f->model_order;
	}
	OK(all && seen == 7, "demo.onnx: each fusion a checked conv_bn in graph 'resnet_block', float32, model_order 0, 1, 2");
	OK(bnfold_result_fusion(b.r, 3) == NULL && bnfold_result_skip(b.r, 0) == NULL, "past the end: NULL");
	OK(report_ok(b.r, "<buffer>", NULL), "the report of a buffer without a name names \"<buffer>\"");
	test_op_types(b.r, &b.n, len, b.out_len);
	bnfold_result_counts(NULL, &none);
	OK(none.bn_found == 0 && none.skipped == 0 && bnfold_result_n_fusions(NULL) == 0 &&
	   bnfold_result_n_skips(NULL) == 0 && bnfold_result_fusion(NULL, 0) == NULL &&
	   bnfold_result_json(NULL) == NULL, "a NULL result counts nothing");
	bnfold_result_free(NULL);
	bnfold_free(NULL);
	folded_free(&b);
	free(in);
}


/* threads, no_simd and stream change how, never what. */
static void test_same_either_way(void)
{
	static const char *const files[] = {"demo.onnx", "conv_bn_fp16.onnx", "gemm_bn_fp16.onnx", "matmul_bn.onnx",
					    "conv_bn_chain.onnx"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char in_path[1024], out_path[1024];
		bnfold_options o;
		size_t len;
		unsigned char *in;
		struct folded want, got;
		int same;

		path_in(in_path, sizeof(in_path), testdata, files[i]);
		path_in(out_path, sizeof(out_path), tmp, "either-out.onnx");
		in = util_read(in_path, &len);
		fold_buf(in, len, files[i], NULL, &want);
		bnfold_options_init(&o);
		o.threads = 1;
		o.no_simd = true;
		fold_buf(in, len, files[i], &o, &got);
		same = want.st == BNFOLD_OK && got.st == BNFOLD_OK && got.out_len == want.out_len &&
		       memcmp(got.out, want.out, want.out_len) == 0 && same_counts(&got.n, &want.n);
		o.threads = 7;
		o.no_simd = false;
		o.stream = false;
		same = same && bnfold_fold_file(in_path, out_path, &o, NULL, NULL) == BNFOLD_OK &&
		       util_same(out_path, want.out, want.out_len);
		OK(same, "%s: threads 1 without SIMD, threads 7 without streaming: the same bytes", files[i]);
		unlink(out_path);
		folded_free(&want);
		folded_free(&got);
		free(in);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_api TESTDATA\n");
		return 2;
	}
	testdata = argv[1];
	if (util_mkdtemp(tmp, sizeof(tmp), "api") < 0) {
		perror("mkdtemp");
		return 1;
	}
	test_defaults();
	test_names();
	test_result_views();
	test_fixtures();
	test_same_either_way();
	OK(util_count_entries(tmp) == 0, "nothing left in the test's folder");
	util_rmdir(tmp);
	return tap_done();
}
