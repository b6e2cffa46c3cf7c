/* Two threads fold different models at once through the public API
 * (file to file and buffer to buffer, with errors and verification
 * failures in between), many times over: every call gives what the same
 * call gave alone, bytes, counts, report and message.  Run under
 * ThreadSanitizer by tools/test (build-tsan/).
 *   test_api_threads TESTDATA */
#include <pthread.h>

#include "api_util.h"
#include "bnfold.h"
#include "tap.h"

#define ITERATIONS 40

enum kind { FILE_TO_FILE, BUFFER_TO_BUFFER, GARBAGE, TOLERANCE_0 };

/* One call and what it gave the first time, alone. */
struct task {
	enum kind kind;
	const char *fixture;
	char in_path[1024], out_path[1024], name[64];
	unsigned char *in;
	size_t in_len;
	/* the outcome */
	bnfold_status st;
	unsigned char *out;
	size_t out_len;
	char *json;
	char message[1024];
	bnfold_counts counts;
};

struct worker {
	const char *tag;
	struct task tasks[3];
	int mismatches;
	char first[2048];
};

static const char *testdata;
static char tmp[512];

static void outcome_free(struct task *t)
{
	free(t->out);
	free(t->json);
	t->out = NULL;
	t->json = NULL;
}

/* Make the call of t and record its outcome in t. */
static void run_task(struct task *t)
{
	bnfold_options o;
	bnfold_result *r = NULL;
	bnfold_error e;
	void *out = NULL;
	size_t out_len = 0;
	const char *json;

	bnfold_options_init(&o);
	memset(&t->counts, 0, sizeof(t->counts));
	if (t->kind == FILE_TO_FILE) {
		t->st = bnfold_fold_file(t->in_path, t->out_path, &o, &r, &e);
		t->out = t->st == BNFOLD_OK ? util_read(t->out_path, &t->out_len) : NULL;
		unlink(t->out_path);
	} else {
		o.tolerance = t->kind == TOLERANCE_0 ? 0 : -1;
		t->st = bnfold_fold_buffer(t->in, t->in_len, t->name, &out, &out_len, &o, &r, &e);
		if ((t->out = out ? malloc(out_len ? out_len : 1) : NULL))
			memcpy(t->out, out, out_len);
		t->out_len = out_len;
		bnfold_free(out);
	}
	json = r ? bnfold_result_json(r) : NULL;
	t->json = json ? strdup(json) : NULL;
	bnfold_result_counts(r, &t->counts);
	snprintf(t->message, sizeof(t->message), "%s", e.message);
	bnfold_result_free(r);
}

/* The task made again; 0 when it gave what it gave the first time. */
static int rerun_matches(const struct task *want, char *why, size_t size)
{
	struct task got = *want;
	int same;

	run_task(&got);
	same = got.st == want->st && got.out_len == want->out_len && !got.out == !want->out &&
	       (!got.out || memcmp(got.out, want->out, got.out_len) == 0) && !got.json == !want->json &&
	       (!got.json || strcmp(got.json, want->json) == 0) && strcmp(got.message, want->message) == 0 &&
	       memcmp(&got.counts, &want->counts, sizeof(got.counts)) == 0;
	if (!same)
		snprintf(why, size, "%s %s: status %s (alone %s), %zu bytes (alone %zu), message '%s' (alone '%s')",
			 want->name, want->fixture, bnfold_status_name(got.st), bnfold_status_name(want->st), got.out_len,
			 want->out_len, got.message, want->message);
	outcome_free(&got);
	return same ? 0 : -1;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < ITERATIONS; i++)
		for (size_t k = 0; k < sizeof(w->tasks) / sizeof(w->tasks[0]); k++) {
			char why[2048];
			if (rerun_matches(&w->tasks[k], why, sizeof(why)) < 0 && w->mismatches++ == 0)
				snprintf(w->first, sizeof(w->first), "%s", why);
		}
	return NULL;
}

static int task_init(struct task *t, const char *tag, enum kind kind, const char *fixture)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->fixture = fixture;
	snprintf(t->name, sizeof(t->name), "%s-%s", tag, fixture);
	snprintf(t->in_path, sizeof(t->in_path), "%s/%s", testdata, fixture);
	snprintf(t->out_path, sizeof(t->out_path), "%s/%s.onnx", tmp, t->name);
	if (!(t->in = util_read(t->in_path, &t->in_len)))
		return -1;
	if (kind == GARBAGE) /* the model cut short: not an ONNX model */
		t->in_len /= 2;
	return 0;
}

static void check_alone(const struct worker *w)
{
	static const bnfold_status want[] = {BNFOLD_OK, BNFOLD_OK, BNFOLD_E_NOT_ONNX, BNFOLD_E_VERIFY};
	for (size_t k = 0; k < sizeof(w->tasks) / sizeof(w->tasks[0]); k++) {
		const struct task *t = &w->tasks[k];
		int named = t->st == BNFOLD_OK || strncmp(t->message, t->name, strlen(t->name)) == 0;
		OK(t->st == want[t->kind] && named && (t->st != BNFOLD_OK || (t->out && t->json && t->counts.bn_folded > 0)),
		   "alone: %s gives %s%s", t->name, bnfold_status_name(t->st),
		   t->st == BNFOLD_OK ? " and a folded model" : ", a message naming it");
	}
}

int main(int argc, char **argv)
{
	struct worker w[2] = {{.tag = "A"}, {.tag = "B"}};
	pthread_t th[2];
	int ready = 1, started = 0;

	if (argc != 2 || util_mkdtemp(tmp, sizeof(tmp), "threads") < 0) {
		fprintf(stderr, "usage: test_api_threads TESTDATA\n");
		return 2;
	}
	testdata = argv[1];
	/* A: file to file, errors, buffers; B: buffers, failed checks, files. */
	ready = task_init(&w[0].tasks[0], "A", FILE_TO_FILE, "demo.onnx") == 0 &&
		task_init(&w[0].tasks[1], "A", GARBAGE, "conv_bn_fp16.onnx") == 0 &&
		task_init(&w[0].tasks[2], "A", BUFFER_TO_BUFFER, "gemm_bn_fp16.onnx") == 0 &&
		task_init(&w[1].tasks[0], "B", BUFFER_TO_BUFFER, "conv_bn_fp16.onnx") == 0 &&
		task_init(&w[1].tasks[1], "B", TOLERANCE_0, "demo.onnx") == 0 &&
		task_init(&w[1].tasks[2], "B", FILE_TO_FILE, "matmul_bn.onnx") == 0;
	OK(ready, "the fixtures are read");
	if (!ready)
		return tap_done();
	for (int i = 0; i < 2; i++)
		for (size_t k = 0; k < 3; k++)
			run_task(&w[i].tasks[k]);
	check_alone(&w[0]);
	check_alone(&w[1]);

	for (int i = 0; i < 2; i++)
		started += pthread_create(&th[i], NULL, work, &w[i]) == 0;
	OK(started == 2, "two threads start");
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++)
		OK(w[i].mismatches == 0,
		   "thread %s: %d x 3 calls at the same time as thread %s, each as it was alone (%d differ)%s%s", w[i].tag,
		   ITERATIONS, w[1 - i].tag, w[i].mismatches, w[i].mismatches ? ": first " : "", w[i].first);

	OK(util_count_entries(tmp) == 0, "no file left in the folder the outputs went to");
	for (int i = 0; i < 2; i++)
		for (size_t k = 0; k < 3; k++) {
			outcome_free(&w[i].tasks[k]);
			free(w[i].tasks[k].in);
		}
	util_rmdir(tmp);
	return tap_done();
}
