/* libFuzzer target over the public buffer API (bnfold.h only): the bytes
 * go through bnfold_fold_buffer and bnfold_inspect_buffer, with options
 * picked by the last byte.  Built with -fsanitize=fuzzer,address,undefined
 * by tools/fuzz; replay.c drives it over saved inputs in every build.
 *
 * It checks what the header promises for any input:
 *   - an error other than verify_failed: no buffer (NULL, 0), no result, a
 *     non-empty message naming the buffer, without a trailing newline;
 *   - verify_failed: no buffer, a result with a failed check;
 *   - OK: a buffer and a result, message ""; the buffer parses again
 *     (inspect OK) and holds exactly the BatchNormalization nodes that
 *     were skipped; when nothing folded it is the input byte for byte;
 *   - inspect_buffer gives the fold's status and counts;
 *   - the report, whenever there is a result, is JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bnfold.h"

#define NAME "fuzz.onnx"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_buffer: invariant broken: %s\n", what);
	abort();
}

static void check_report(bnfold_result *r)
{
	const char *json = bnfold_result_json(r);
	cJSON *j;
	if (!json)
		return; /* out of memory: allowed */
	if (!(j = cJSON_Parse(json)))
		fail("the report is not JSON");
	cJSON_Delete(j);
}

static void check_error(bnfold_status st, const bnfold_error *e, const void *out, size_t out_len,
			const bnfold_result *r)
{
	size_t n = strlen(e->message);
	/* Names from the model may bring any byte, a newline too (bnfold.h
	 * asks callers to escape them), but the message ends without one. */
	if (e->code != st || n == 0 || e->message[n - 1] == '\n' || strncmp(e->message, NAME ": ", strlen(NAME ": ")) != 0)
		fail("an error without a message naming the buffer");
	if (out || out_len)
		fail("an error with an output buffer");
	if (st == BNFOLD_E_VERIFY) {
		bnfold_counts c;
		bnfold_result_counts(r, &c);
		if (!r || c.verify_failed == 0)
			fail("verify_failed without a result that says which check failed");
	} else if (r) {
		fail("an error with a result");
	}
}

/* The folded model: it parses again and holds the skipped nodes only. */
static void check_output(const uint8_t *in, size_t in_len, const void *out, size_t out_len, const bnfold_counts *c,
			 const bnfold_options *o)
{
	bnfold_result *again = NULL;
	bnfold_counts a;
	bnfold_error e;

	if (c->bn_folded == 0 && c->affine_folded == 0 && (out_len != in_len || memcmp(out, in, in_len) != 0))
		fail("nothing folded, yet the output is not the input");
	if (bnfold_inspect_buffer(out, out_len, "again", o, &again, &e) != BNFOLD_OK) {
		fprintf(stderr, "fuzz_buffer: %s\n", e.message);
		fail("the folded model is not accepted again");
	}
	bnfold_result_counts(again, &a);
	if (a.bn_found != c->skipped)
		fail("the folded model does not hold exactly the skipped BatchNormalization nodes");
	bnfold_result_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags = size ? data[size - 1] : 0;
	bnfold_options o;
	bnfold_result *r = NULL, *ri = NULL;
	bnfold_error e, ei;
	bnfold_counts c, ci;
	bnfold_status st, si;
	void *out = NULL;
	size_t out_len = 0;

	bnfold_options_init(&o);
	o.fold_overridable = flags & 1;
	o.verify = !(flags & 2);
	o.threads = flags & 4 ? 1 : 0;
	o.max_new_bytes = (size_t)1 << 20; /* keeps ConstantOfShape weights quick to fold */

	st = bnfold_fold_buffer(data, size, NAME, &out, &out_len, &o, &r, &e);
	if (st < BNFOLD_OK || st > BNFOLD_E_VERIFY)
		fail("a status bnfold.h does not list");
	if (st == BNFOLD_OK) {
		if (!out || !r || e.code != BNFOLD_OK || e.message[0])
			fail("OK without a buffer and a result, or with a message");
		bnfold_result_counts(r, &c);
		check_output(data, size, out, out_len, &c, &o);
	} else {
		check_error(st, &e, out, out_len, r);
	}
	if (r)
		check_report(r);

	si = bnfold_inspect_buffer(data, size, NAME, &o, &ri, &ei);
	bnfold_result_counts(r, &c);
	bnfold_result_counts(ri, &ci);
	/* Packing the output can run out of memory where inspecting did not. */
	if (si != st && !(st == BNFOLD_E_NOMEM && si == BNFOLD_OK))
		fail("inspect_buffer and fold_buffer disagree on the status");
	if (si == st && (c.bn_found != ci.bn_found || c.bn_folded != ci.bn_folded || c.skipped != ci.skipped ||
			 c.affine_folded != ci.affine_folded || c.verify_failed != ci.verify_failed))
		fail("inspect_buffer counts differently from fold_buffer");

	bnfold_result_free(r);
	bnfold_result_free(ri);
	bnfold_free(out);
	return 0;
}
