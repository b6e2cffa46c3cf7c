/* libFuzzer target over the whole path: parse bytes as a model, fold it,
 * build the report, pack the result and parse that again.  Built with
 * -fsanitize=fuzzer,address,undefined by tools/fuzz; replay.c drives the
 * same function over saved inputs in the ordinary test builds.
 *
 * Beyond "no crash, no sanitizer report", it checks what must hold for
 * any input: every BatchNormalization found is folded or skipped, a fold
 * never adds nodes, the report is JSON in UTF-8, and a folded model packs
 * into bytes that parse and pack again into the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "driver.h"
#include "model_read.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fold: invariant broken: %s\n", what);
	abort();
}

/* True when s is well-formed UTF-8 (RFC 3629), checked apart from
 * report.c's own repair so that one cannot hide a bug in the other. */
static int is_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, n, cp;
		if (c < 0x80) {
			s++;
			continue;
		}
		n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
		if (n == 0 || c > 0xf4)
			return 0;
		cp = c & (0x3f >> n);
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if (cp < (n == 1 ? 0x80u : n == 2 ? 0x800u : 0x10000u) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The last byte picks the option, so the fuzzer reaches both paths;
	 * a small cap keeps ConstantOfShape weights quick to fold. */
	bnf_fold_options opt = {.fold_overridable = size > 0 && (data[size - 1] & 1),
				.max_new_bytes = (size_t)1 << 20};
	bnf_result res;
	Onnx__ModelProto *m, *again;
	uint8_t first[4096];
	ProtobufCBufferSimple out = PROTOBUF_C_BUFFER_SIMPLE_INIT(first);
	char *report;

	if (!(m = bnf_model_parse("fuzz", data, size, NULL)))
		return 0;
	if (bnf_fold_model(m, "fuzz", &opt, &res, NULL) == 0) {
		if (bnf_result_bn_folded(&res) + bnf_result_bn_skipped(&res) != res.bn_found)
			fail("folded + skipped != BatchNormalization found");
		if (res.nodes_after > res.nodes_before)
			fail("folding added nodes");
		if ((report = bnf_report_json(&res, "fuzz", "out"))) {
			cJSON *parsed = cJSON_Parse(report);
			if (!parsed)
				fail("the report is not JSON");
			if (!is_utf8((const unsigned char *)report))
				fail("the report is not UTF-8");
			cJSON_Delete(parsed);
			free(report);
		}
		if (res.n_fusions > 0) {
			protobuf_c_message_pack_to_buffer(&m->base, &out.base);
			if (!(again = bnf_model_parse("fuzz output", out.data, out.len, NULL)))
				fail("the folded model does not parse");
			if (onnx__model_proto__get_packed_size(again) != out.len) {
				fail("the folded model packs differently once read back");
			} else {
				uint8_t *twice = malloc(out.len ? out.len : 1);
				if (twice) {
					onnx__model_proto__pack(again, twice);
					if (memcmp(twice, out.data, out.len) != 0)
						fail("the folded model packs differently once read back");
					free(twice);
				}
			}
			onnx__model_proto__free_unpacked(again, NULL);
			PROTOBUF_C_BUFFER_SIMPLE_CLEAR(&out);
		}
	}
	bnf_result_free(&res);
	onnx__model_proto__free_unpacked(m, NULL);
	return 0;
}
