/* A weight cut into units of work, summed in two sets by one or two
 * threads, the same sums either way. */
#include "verify_sums.h"

#include <pthread.h>
#include <unistd.h>

#include "tensor.h"

/* Weight elements per unit of work.  The units go to two sets, even and
 * odd, each summed on its own (by a thread of its own when the weight is
 * large and there are two CPUs) and added at the end: the same sums
 * whether one thread did the work or two. */
#define UNIT ((size_t)8 * BNF_VERIFY_CHUNK)

typedef struct unit_set {
	const bnf_verify_ctx *x;
	size_t parity; /* 0: units 0, 2, 4, ...; 1: units 1, 3, ... */
	bnf_verify_acc *acc;
	const char *problem;
} unit_set;

static void run_units(unit_set *u)
{
	size_t numel = u->x->vc->weight->numel;
	for (size_t first = u->parity * UNIT; first < numel && !u->problem; first += 2 * UNIT) {
		size_t last = numel - first < UNIT ? numel : first + UNIT;
		u->problem = bnf_verify_pass(u->x, u->acc, first, last);
	}
}

static void *unit_thread(void *arg)
{
	run_units(arg);
	return NULL;
}

/* Whether a second thread may sum the odd units: two CPUs or more, and
 * the caller did not ask for one thread (threads 1: the tests compare
 * both ways, and a check beside the writer leaves it the other CPU). */
static bool second_thread(int threads)
{
	if (threads == 1)
		return false;
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2;
}

int bnf_verify_sum_units(const bnf_verify_ctx *x, int threads, bnf_verify_acc *even, const char **problem)
{
	bnf_verify_acc odd_acc = {0};
	unit_set e = {.x = x, .parity = 0, .acc = even}, o = {.x = x, .parity = 1, .acc = &odd_acc};
	size_t n = x->g->out_channels * BNF_VERIFY_NPROBE;
	pthread_t t;
	bool threaded = false;
	int rc = -1;

	if (x->vc->weight->numel <= UNIT) {
		run_units(&e);
		*problem = e.problem;
		return 0;
	}
	if (!bnf_verify_acc_alloc(&odd_acc, x->g->out_channels))
		goto out;
	threaded = second_thread(threads) && bnf_thread_start(&t, unit_thread, &o) == 0;
	run_units(&e);
	if (threaded)
		pthread_join(t, NULL);
	else
		run_units(&o);
	*problem = e.problem ? e.problem : o.problem;
	for (size_t i = 0; i < n && !*problem; i++) {
		even->R[i] += odd_acc.R[i];
		even->F[i] += odd_acc.F[i];
		even->M[i] += odd_acc.M[i];
	}
	rc = 0;
out:
	bnf_verify_acc_free(&odd_acc);
	return rc;
}
