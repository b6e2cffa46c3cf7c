#include "report.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tensor.h"

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

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

/* JSON must be UTF-8, but names in a model are bytes: cJSON copies them
 * as they are, so each byte that is not part of valid UTF-8 becomes
 * \ufffd (it can only be inside a string).  Frees text; NULL on no memory. */
static char *utf8_repair(char *text)
{
	size_t bad = 0, len = 0, n;
	char *out, *o;
	for (const unsigned char *p = (const unsigned char *)text; *p; p += n, len += n)
		if (!(n = utf8_len(p)))
			bad++, n = 1;
	if (!bad)
		return text;
	if ((out = malloc(len + 5 * bad + 1))) {
		o = out;
		for (const unsigned char *p = (const unsigned char *)text; *p; p += n) {
			if (!(n = utf8_len(p))) {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				n = 1;
			} else {
				memcpy(o, p, n);
				o += n;
			}
		}
		*o = '\0';
	}
	cJSON_free(text);
	return out;
}

char *bnf_report_json(const bnf_result *r, const char *input, const char *output,
		      const bnf_fold_options *opt)
{
	cJSON *root = cJSON_CreateObject(), *o, *arr;
	char *text = NULL;

	if (!root)
		goto oom;
	o = cJSON_AddObjectToObject(root, "tool");
	cJSON_AddStringToObject(o, "name", "bnfold");
	cJSON_AddStringToObject(o, "version", BNF_VERSION);
	cJSON_AddStringToObject(root, "input", input);
	cJSON_AddItemToObject(root, "output", str_or_null(output));
	o = cJSON_AddObjectToObject(root, "options");
	cJSON_AddBoolToObject(o, "fold_overridable", opt->fold_overridable);

	o = cJSON_AddObjectToObject(root, "model");
	cJSON_AddNumberToObject(o, "ir_version", (double)r->ir_version);
	if (r->opset >= 0)
		cJSON_AddNumberToObject(o, "opset", (double)r->opset);
	else
		cJSON_AddNullToObject(o, "opset");
	cJSON_AddStringToObject(o, "producer_name", r->producer_name ? r->producer_name : "");
	cJSON_AddStringToObject(o, "producer_version", r->producer_version ? r->producer_version : "");

	o = cJSON_AddObjectToObject(root, "counts");
	cJSON_AddNumberToObject(o, "bn_found", (double)r->bn_found);
	cJSON_AddNumberToObject(o, "folded", (double)r->n_fusions);
	cJSON_AddNumberToObject(o, "skipped", (double)r->n_skips);
	cJSON_AddNumberToObject(o, "nodes_before", (double)r->nodes_before);
	cJSON_AddNumberToObject(o, "nodes_after", (double)r->nodes_after);
	cJSON_AddNumberToObject(o, "graph_inputs_removed", (double)r->inputs_removed);

	arr = cJSON_AddArrayToObject(root, "fusions");
	for (size_t i = 0; arr && i < r->n_fusions; i++) {
		const bnf_fusion *f = &r->fusions[i];
		cJSON *e = cJSON_CreateObject();
		if (!e || !cJSON_AddItemToArray(arr, e))
			goto oom;
		cJSON_AddStringToObject(e, "pattern", f->pattern);
		cJSON_AddStringToObject(e, "graph", f->graph);
		cJSON_AddStringToObject(e, "layer", f->layer);
		cJSON_AddStringToObject(e, "layer_op", f->layer_op);
		cJSON_AddStringToObject(e, "bn", f->bn);
		cJSON_AddStringToObject(e, "bn_output", f->bn_output);
		cJSON_AddNumberToObject(e, "channels", (double)f->channels);
		cJSON_AddStringToObject(e, "dtype", bnf_dtype_name(f->dtype));
		cJSON_AddNumberToObject(e, "epsilon", f->eps);
		cJSON_AddStringToObject(e, "weight", f->weight);
		cJSON_AddStringToObject(e, "bias", f->bias);
		cJSON_AddBoolToObject(e, "bias_created", f->bias_created);
		cJSON_AddBoolToObject(e, "weight_copied", f->weight_copied);
	}
	arr = cJSON_AddArrayToObject(root, "skipped");
	for (size_t i = 0; arr && i < r->n_skips; i++) {
		const bnf_skip *s = &r->skips[i];
		cJSON *e = cJSON_CreateObject();
		if (!e || !cJSON_AddItemToArray(arr, e))
			goto oom;
		cJSON_AddStringToObject(e, "graph", s->graph);
		cJSON_AddStringToObject(e, "bn", s->bn);
		cJSON_AddStringToObject(e, "bn_output", s->bn_output);
		cJSON_AddItemToObject(e, "layer", str_or_null(s->layer));
		cJSON_AddStringToObject(e, "reason", bnf_reason_code(s->reason));
		cJSON_AddStringToObject(e, "message", s->message);
	}
	if (!arr)
		goto oom;
	text = cJSON_Print(root);
	if (!text || !(text = utf8_repair(text)))
		goto oom;
	cJSON_Delete(root);
	return text;
oom:
	cJSON_Delete(root);
	bnf_error("out of memory building the report");
	return NULL;
}
