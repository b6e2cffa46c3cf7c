/* Minimal TAP producer for the unit tests (meson test protocol 'tap'). */
#ifndef BNF_TAP_H
#define BNF_TAP_H

#include <math.h>
#include <stdio.h>

static int tap_n, tap_failed;

#define OK(cond, ...)                                                      \
	do {                                                               \
		int ok_ = (cond);                                          \
		printf("%s %d - ", ok_ ? "ok" : "not ok", ++tap_n);        \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
		if (!ok_) {                                                \
			tap_failed++;                                      \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                          \
	} while (0)

/* |got - want| <= tol, printing both on failure. */
#define NEAR(got, want, tol, ...)                                          \
	do {                                                               \
		double g_ = (got), w_ = (want);                            \
		OK(fabs(g_ - w_) <= (tol), __VA_ARGS__);                  \
		if (!(fabs(g_ - w_) <= (tol)))                             \
			printf("#   got %.17g want %.17g\n", g_, w_);          \
	} while (0)

static int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
