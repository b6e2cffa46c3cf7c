#include "signals.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A signal handler reaches what it needs only through statics.  The temp
 * files being written (a model and its data file: two at once; room for
 * twice that): a slot's path is complete before its flag is set, and the
 * flag is cleared before the path changes, so the handler never reads a
 * half-written path. */
#define N_PENDING 4
static char pending_tmp[N_PENDING][PATH_MAX];
static volatile sig_atomic_t pending_used[N_PENDING];
static char bus_msg[PATH_MAX + 96];
static size_t bus_len;

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void remove_pending(void)
{
	for (int i = 0; i < N_PENDING; i++)
		if (pending_used[i])
			unlink(pending_tmp[i]);
}

/* Remove the temp files, then die of the signal as without the handler. */
static void on_signal(int sig)
{
	remove_pending();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_bus(int sig)
{
	(void)sig;
	if (bus_len)
		(void)!write(2, bus_msg, bus_len);
	remove_pending();
	_exit(1);
}

static void catch_signals(void)
{
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++) {
		struct sigaction sa, old;
		if (sigaction(cleanup_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(cleanup_signals[i], &sa, NULL);
	}
}

void bnf_signals_tempfile(const char *path, bool exists, void *ctx)
{
	size_t n = strlen(path);
	(void)ctx;
	for (int i = 0; i < N_PENDING; i++) {
		if (!exists && pending_used[i] && strcmp(pending_tmp[i], path) == 0) {
			pending_used[i] = 0;
			return;
		}
		if (exists && !pending_used[i] && n < sizeof(pending_tmp[i])) {
			memcpy(pending_tmp[i], path, n + 1);
			pending_used[i] = 1;
			catch_signals();
			return;
		}
	}
}

void bnf_signals_reading(const char *model_path)
{
	struct sigaction sa;
	int n = snprintf(bus_msg, sizeof(bus_msg), "bnfold: error: %s: a file it reads from shrank while being read\n",
			 model_path);
	bus_len = n > 0 && (size_t)n < sizeof(bus_msg) ? (size_t)n : 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_bus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}
