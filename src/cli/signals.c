#include "signals.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A signal handler reaches what it needs only through statics. */
static char pending_tmp[PATH_MAX]; /* the temp file to remove, or "" */
static char bus_msg[PATH_MAX + 96];
static size_t bus_len;

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

/* Remove the temp file, then die of the signal as without the handler. */
static void on_signal(int sig)
{
	if (pending_tmp[0])
		unlink(pending_tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_bus(int sig)
{
	(void)sig;
	if (bus_len)
		(void)!write(2, bus_msg, bus_len);
	if (pending_tmp[0])
		unlink(pending_tmp);
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

void bnf_signals_tempfile(const char *path, void *ctx)
{
	size_t n;
	(void)ctx;
	if (!path) {
		pending_tmp[0] = '\0';
		return;
	}
	if ((n = strlen(path)) < sizeof(pending_tmp)) {
		memcpy(pending_tmp, path, n + 1);
		catch_signals();
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
