#include "report_doc.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cli_report {
	cJSON *root, *inputs;
	bool failed; /* memory ran out: no text */
};

/* The counts the totals add up, as named in an entry's "counts". */
static const char *const summed[] = {
	"bn_found", "folded", "affine_folded", "skipped", "affine_skipped", "nodes_before", "nodes_after",
	"graph_inputs_removed",
};

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0 (RFC 3629:
 * no overlong forms, surrogates or code points above U+10FFFF). */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* A JSON string of s: paths and messages are bytes (a file name, a
 * model's names), JSON is UTF-8, so each byte that is not part of valid
 * UTF-8 becomes U+FFFD, as the library does in its entries. */
static cJSON *utf8_string(const char *s)
{
	size_t len = strlen(s), n;
	char *clean, *o;
	cJSON *item;

	if (len > (SIZE_MAX - 1) / 3 || !(clean = malloc(3 * len + 1)))
		return NULL;
	o = clean;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += n) {
		if (!(n = utf8_len(p))) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			n = 1;
		} else {
			memcpy(o, p, n);
			o += n;
		}
	}
	*o = '\0';
	item = cJSON_CreateString(clean);
	free(clean);
	return item;
}

cli_report *cli_report_new(const char *job, const bnfold_options *opt)
{
	cli_report *d = calloc(1, sizeof(*d));
	cJSON *tool, *o;

	if (!d || !(d->root = cJSON_CreateObject()))
		goto oom;
	tool = cJSON_AddObjectToObject(d->root, "tool");
	if (!tool || !cJSON_AddStringToObject(tool, "name", "bnfold") ||
	    !cJSON_AddStringToObject(tool, "version", bnfold_version()) ||
	    !cJSON_AddStringToObject(d->root, "job", job) || !(o = cJSON_AddObjectToObject(d->root, "options")))
		goto oom;
	if (!cJSON_AddBoolToObject(o, "fold_overridable", opt->fold_overridable) ||
	    !cJSON_AddBoolToObject(o, "verify", opt->verify))
		goto oom;
	if (!(opt->verify && opt->tolerance >= 0 ? cJSON_AddNumberToObject(o, "tolerance", opt->tolerance)
						 : cJSON_AddNullToObject(o, "tolerance")))
		goto oom;
	if (!(d->inputs = cJSON_AddArrayToObject(d->root, "inputs")))
		goto oom;
	return d;
oom:
	cli_report_free(d);
	return NULL;
}

/* {"code", "exit", "message"}, or NULL when memory runs out. */
static cJSON *error_object(const char *code, int exit_status, const char *message)
{
	cJSON *e = cJSON_CreateObject(), *msg = utf8_string(message);

	if (e && msg && cJSON_AddStringToObject(e, "code", code) && cJSON_AddNumberToObject(e, "exit", exit_status) &&
	    cJSON_AddItemToObject(e, "message", msg))
		return e;
	cJSON_Delete(msg); /* not attached: adding failed or never ran */
	cJSON_Delete(e);
	return NULL;
}

/* The entry of an input with a result: the library's object; for an
 * error, its null output (nothing written) and err, placed after it.
 * Takes err in any case; NULL when memory runs out. */
static cJSON *result_entry(bnfold_result *res, cJSON *err)
{
	const char *text = bnfold_result_json(res);
	cJSON *e = text ? cJSON_Parse(text) : NULL, *null;

	if (!e || !err) {
		cJSON_Delete(err);
		return e;
	}
	if (!(null = cJSON_CreateNull()) || !cJSON_ReplaceItemInObjectCaseSensitive(e, "output", null)) {
		cJSON_Delete(null);
		goto oom;
	}
	if (!cJSON_AddItemToObject(e, "error", err))
		goto oom;
	/* err is last: what follows the output moves after it, so the error
	 * reads before the details (a detached item keeps its name). */
	for (cJSON *item = null->next, *next; item != err; item = next) {
		next = item->next;
		cJSON_AddItemToArray(e, cJSON_DetachItemViaPointer(e, item));
	}
	return e;
oom:
	cJSON_Delete(err);
	cJSON_Delete(e);
	return NULL;
}

/* {"input", "error"}: an input without a result.  Takes err. */
static cJSON *failed_entry(const char *input, cJSON *err)
{
	cJSON *e = cJSON_CreateObject(), *in = utf8_string(input);

	if (e && in && cJSON_AddItemToObject(e, "input", in)) {
		in = NULL;
		if (cJSON_AddItemToObject(e, "error", err))
			return e;
	}
	cJSON_Delete(in);
	cJSON_Delete(err);
	cJSON_Delete(e);
	return NULL;
}

int cli_report_add(cli_report *d, const char *input, bnfold_result *res, const char *code, int exit_status,
		   const char *message)
{
	cJSON *err = NULL, *e = NULL;

	if (d->failed)
		return -1;
	if (code && !(err = error_object(code, exit_status, message)))
		goto oom;
	e = res ? result_entry(res, err) : err ? failed_entry(input, err) : NULL;
	if (!e || !cJSON_AddItemToArray(d->inputs, e))
		goto oom;
	return 0;
oom:
	cJSON_Delete(e);
	d->failed = true;
	return -1;
}

/* 1 when an entry's error calls for exit status n. */
static int has_exit(const cJSON *entry, int n)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(entry, "error"), "exit");
	return cJSON_IsNumber(x) && x->valueint == n;
}

/* "totals": the entries, those with an error, and the counts summed over
 * the inputs without one. */
static cJSON *totals(const cJSON *inputs)
{
	double sums[sizeof(summed) / sizeof(summed[0])] = {0};
	double failed = 0, verify_failed = 0;
	const cJSON *e;
	cJSON *t = cJSON_CreateObject();

	cJSON_ArrayForEach(e, inputs) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "counts");
		failed += has_exit(e, 1);
		verify_failed += has_exit(e, 4);
		if (cJSON_GetObjectItemCaseSensitive(e, "error"))
			continue;
		for (size_t i = 0; i < sizeof(summed) / sizeof(summed[0]); i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, summed[i]);
			sums[i] += cJSON_IsNumber(x) ? x->valuedouble : 0;
		}
	}
	if (!t || !cJSON_AddNumberToObject(t, "inputs", cJSON_GetArraySize(inputs)) ||
	    !cJSON_AddNumberToObject(t, "failed", failed) || !cJSON_AddNumberToObject(t, "verify_failed", verify_failed))
		goto oom;
	for (size_t i = 0; i < sizeof(summed) / sizeof(summed[0]); i++)
		if (!cJSON_AddNumberToObject(t, summed[i], sums[i]))
			goto oom;
	return t;
oom:
	cJSON_Delete(t);
	return NULL;
}

char *cli_report_text(cli_report *d)
{
	cJSON *t;
	char *text, *out = NULL;
	size_t n;

	if (d->failed || !(t = totals(d->inputs)))
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(d->root, "totals"); /* a second call */
	if (!cJSON_AddItemToObject(d->root, "totals", t)) {
		cJSON_Delete(t);
		return NULL;
	}
	if (!(text = cJSON_Print(d->root)))
		return NULL;
	n = strlen(text);
	if ((out = malloc(n + 2))) {
		memcpy(out, text, n);
		memcpy(out + n, "\n", 2);
	}
	cJSON_free(text);
	return out;
}

void cli_report_free(cli_report *d)
{
	if (!d)
		return;
	cJSON_Delete(d->root);
	free(d);
}
