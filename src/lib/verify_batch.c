/* Checks run while the model is written: the jobs of bnf_verify_plan_later
 * on a thread of their own beside the writer. */
#include "verify.h"

#include <pthread.h>
#include <stdlib.h>

#include "common.h"
#include "verify_lanes.h"

/* One job, the tag of its result and the result once run. */
typedef struct batch_entry {
	bnf_verify_job *job;
	size_t tag;
	bnf_verify v;
	int rc;
} batch_entry;

struct bnf_verify_batch {
	batch_entry *e;
	size_t n, cap;
	pthread_t thread;
	bool running;
	/* The first failure of a job, written only by whichever thread runs
	 * the jobs and read once they are done (bnf_verify_batch_finish copies
	 * it to the caller's error). */
	bnf_err err;
};

int bnf_verify_batch_add(bnf_verify_batch **bp, bnf_verify_job *j, size_t tag, bnf_err *e)
{
	bnf_verify_batch *b = *bp;

	if ((!b && !(b = *bp = calloc(1, sizeof(*b)))) || BNF_GROW(b->e, b->n, b->cap) < 0) {
		bnf_verify_job_free(j);
		return bnf_fail(e, BNFOLD_E_NOMEM, "out of memory verifying a fusion");
	}
	b->e[b->n++] = (batch_entry){.job = j, .tag = tag};
	return 0;
}

/* The jobs one after the other; with one_thread, the units of a weight on
 * this thread only (bnf_verify_job_run). */
static void run_jobs(bnf_verify_batch *b, bool one_thread)
{
	for (size_t i = 0; i < b->n; i++)
		b->e[i].rc = bnf_verify_job_run(b->e[i].job, one_thread, &b->e[i].v, &b->err);
}

/* Beside the writer: the other CPU writes the model meanwhile. */
static void *batch_thread(void *arg)
{
	run_jobs(arg, true);
	return NULL;
}

void bnf_verify_batch_start(bnf_verify_batch *b)
{
	if (!b || b->running || b->n == 0)
		return;
	bnf_verify_lanes_probe(); /* before the thread starts: the probe writes its static here */
	b->running = bnf_thread_start(&b->thread, batch_thread, b) == 0;
}

static void batch_wait(bnf_verify_batch *b)
{
	if (b->running)
		pthread_join(b->thread, NULL);
	else
		run_jobs(b, false);
	b->running = false;
}

int bnf_verify_batch_finish(bnf_verify_batch *b, void (*put)(size_t tag, const bnf_verify *v, void *ctx), void *ctx,
			    bnf_err *e)
{
	int rc = 0;

	if (!b)
		return 0;
	batch_wait(b);
	for (size_t i = 0; i < b->n; i++) {
		if (b->e[i].rc < 0)
			rc = -1;
		else
			put(b->e[i].tag, &b->e[i].v, ctx);
	}
	if (rc < 0 && b->err.code)
		bnf_fail(e, b->err.code, "%s", b->err.msg);
	bnf_verify_batch_free(b);
	return rc;
}

void bnf_verify_batch_free(bnf_verify_batch *b)
{
	if (!b)
		return;
	if (b->running)
		pthread_join(b->thread, NULL);
	for (size_t i = 0; i < b->n; i++)
		bnf_verify_job_free(b->e[i].job);
	free(b->e);
	free(b);
}
