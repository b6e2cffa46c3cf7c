/* The public API (bnfold.h): options, entry points, errors.  Each entry
 * point reads a model, folds it with the driver and writes it; the result
 * and its public views are in api_result.c. */
#include "bnfold.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_internal.h"
#include "common.h"
#include "driver.h"
#include "model_read.h"
#include "model_write.h"
#include "outfile.h"
#include "visit.h"

const char *bnfold_version(void)
{
	return BNFOLD_VERSION_STRING;
}

unsigned bnfold_version_number(void)
{
	return BNFOLD_VERSION_NUMBER;
}

const char *bnfold_status_name(int code)
{
	static const char *const names[] = {"ok", "invalid_argument", "io_error", "not_onnx", "out_of_memory",
					    "verify_failed"};
	return code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown";
}

void bnfold_options_init_sized(bnfold_options *o, size_t size)
{
	bnfold_options d;
	memset(&d, 0, sizeof(d));
	d.size = size;
	d.verify = true;
	d.tolerance = -1.0;
	d.stream = true;
	d.sync = BNFOLD_SYNC_AUTO;
	memcpy(o, &d, size < sizeof(d) ? size : sizeof(d));
}

void bnfold_free(void *p)
{
	free(p);
}

/* The caller's options (NULL: the defaults) as this library's struct:
 * fields the caller's header did not have keep their defaults. */
static int read_options(const bnfold_options *in, bnfold_options *o, bnf_err *e)
{
	bnfold_options_init(o);
	if (!in)
		return 0;
	if (in->size < offsetof(bnfold_options, fold_overridable) + sizeof(bool) || in->size > (size_t)1 << 16)
		return bnf_fail(e, BNFOLD_E_INVALID, "options were not set up with bnfold_options_init");
	memcpy(o, in, in->size < sizeof(*o) ? in->size : sizeof(*o));
	o->size = sizeof(*o);
	if (o->tolerance != o->tolerance)
		return bnf_fail(e, BNFOLD_E_INVALID, "the tolerance is NaN");
	if (o->threads < 0)
		return bnf_fail(e, BNFOLD_E_INVALID, "threads is negative");
	if (o->sync != BNFOLD_SYNC_ALWAYS && o->sync != BNFOLD_SYNC_NEVER && o->sync != BNFOLD_SYNC_AUTO)
		return bnf_fail(e, BNFOLD_E_INVALID, "sync is not a bnfold_sync value");
	return 0;
}

/* The options of the driver for one pass over a model. */
static bnf_fold_options fold_options(const bnfold_options *o)
{
	bnf_fold_options f;
	memset(&f, 0, sizeof(f));
	f.fold_overridable = o->fold_overridable;
	f.no_verify = !o->verify;
	f.tolerance_set = o->tolerance >= 0;
	f.tolerance = o->tolerance;
	f.max_new_bytes = o->max_new_bytes;
	f.no_simd = o->no_simd;
	f.threads = o->threads;
	return f;
}

static int collect_bn(Onnx__GraphProto *g, Onnx__NodeProto *n, size_t index, int depth, void *ctx)
{
	(void)g, (void)index, (void)depth;
	if (n->op_type && strcmp(n->op_type, "BatchNormalization") == 0 && n->n_output > 0)
		return bnf_strlist_add(ctx, n->output[0]);
	return 0;
}

/* Output names of the BatchNormalization nodes in file order, a
 * subgraph's where its node is, so a table can follow the model. */
static int bn_order(Onnx__ModelProto *m, bnf_strlist *names)
{
	bnf_visitor v = {.node = collect_bn, .ctx = names};
	return m->graph ? bnf_visit_graph(m->graph, &v) : 0;
}

/* The size of the model's external data files. */
static size_t external_bytes(const bnf_input *in)
{
	size_t n = 0;
	for (size_t i = 0; i < in->payloads.n_srcs; i++)
		if (in->payloads.srcs[i]->external)
			n += in->payloads.srcs[i]->len;
	return n;
}

/* The model's size with its external data files. */
static size_t input_bytes(const bnf_input *in)
{
	return in->len + external_bytes(in);
}

/* Every step records why it failed before it returns -1, so this only
 * guards against a bug: a call whose step failed without saying why must
 * fail all the same, and say so (no-op when e holds the failure). */
static void unexplained_failure(bnf_err *e, const char *name)
{
	bnf_fail(e, BNFOLD_E_IO, "%s: internal error: a step failed without recording why", name);
}

/* Whether output is written through a temp file (a regular file, or a new one). */
static bool regular_output(const char *output)
{
	struct stat st;
	return output && strcmp(output, "-") != 0 && (stat(output, &st) != 0 || S_ISREG(st.st_mode));
}

/* One call: where the model comes from and where it goes. */
typedef struct api_call {
	const char *input;  /* the file ("-": stdin), or the buffer's name */
	bool buffer;        /* the model is the len bytes at data */
	const void *data;
	size_t len;
	const char *output; /* the file written, or NULL */
	void **out;         /* else the buffer written (out_len with it), or NULL: nothing written */
	size_t *out_len;
	bnfold_options o;
} api_call;

/* One pass: read the input, fold it into res (order of its BNs noted
 * first).  With defer, the weights are folded without the scan for NaN,
 * Inf and overflow, and the checks of weights read from the input are
 * left to run while the model is written.  0, or -1 after recording an
 * error in e. */
static int read_and_fold(const api_call *c, bool defer, bnf_input *in, bnf_result *res, bnf_strlist *order,
			 bnf_err *e)
{
	bnf_fold_options fold = fold_options(&c->o);

	if ((c->buffer ? bnf_input_open_buffer(c->input, c->data, c->len, c->o.stream, in, e)
		       : bnf_input_open(c->input, in, c->o.stream, e)) < 0)
		return -1;
	fold.payloads = &in->payloads;
	fold.defer_scan = defer;
	fold.defer_verify = defer;
	/* New weight tensors may take as much as the input, or the default cap. */
	if (!fold.max_new_bytes)
		fold.max_new_bytes = input_bytes(in) > BNF_MAX_NEW_BYTES ? input_bytes(in) : BNF_MAX_NEW_BYTES;
	if (bn_order(in->model, order) < 0)
		return bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory", c->input);
	if (bnf_fold_model(in->model, c->input, &fold, res, e) < 0)
		return -1;
	res->bytes_in = in->len;
	res->bytes_in_data = external_bytes(in);
	return 0;
}

/* Replacing the input with a model where nothing folded: the file is left
 * as it is (same inode, same times), unless its weights are to be moved
 * into the model (inline_external). */
static bool unchanged_in_place(const api_call *c, const bnf_input *in, const bnf_result *res)
{
	return c->output && c->o.replace_input && res->n_fusions == 0 && res->inputs_removed == 0 &&
	       !(in->has_external && c->o.inline_external) && bnf_same_file(c->input, c->output);
}

/* Open the output: the file, or a buffer of the size the model will have
 * (the input's bytes when they are written as they are, whole). */
static int open_output(const api_call *c, const bnf_input *in, bool whole, bnf_output *out, bnf_err *e)
{
	if (!c->output)
		return bnf_output_open_memory_from(c->input,
						   whole ? in->len : protobuf_c_message_get_packed_size(&in->model->base),
						   c->o.out_alloc, c->o.out_alloc_ctx, out, e);
	if (bnf_output_open(c->output, out, c->o.tempfile, c->o.tempfile_ctx, e) < 0)
		return -1;
	out->sync = c->o.sync;
	/* about the input's size: a fold removes a few small tensors and adds a few */
	bnf_output_expect(out, in->len + (c->o.inline_external ? bnf_payloads_external_bytes(&in->payloads) : 0));
	return 0;
}

/* Write the folded model (or, when nothing changed, the input byte for
 * byte) to the output, waiting for the deferred checks before the rename
 * (or before the buffer is handed over).  0 written; 1 when a deferred
 * scan or check failed (nothing written: fold again without deferring);
 * -1 after recording an error in e. */
static int write_output(const api_call *c, bnf_input *in, bnf_result *res, const bnf_strlist *order, bool defer,
			bnfold_result **result, bnf_err *e)
{
	bool whole = res->n_fusions == 0 && !in->has_external; /* unchanged, byte for byte */
	bnf_output out;
	int r;

	if (unchanged_in_place(c, in, res)) {
		res->bytes_out = res->bytes_in;
		res->bytes_out_data = res->bytes_in_data;
		if (result && !(*result = bnf_api_result_new(res, order, c->input, c->output)))
			return bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory", c->input);
		return 0;
	}
	if (open_output(c, in, whole, &out, e) < 0)
		return -1;
	r = whole ? bnf_output_write_input(&out, in) : bnf_output_write_model(&out, in->model, &in->payloads,
									     c->o.inline_external);
	if (r < 0 || bnf_result_verify_finish(res, e) < 0) {
		bnf_output_abort(&out);
		return -1;
	}
	if (defer && (out.nonfinite || bnf_result_verify_failed(res) > 0)) {
		bnf_output_abort(&out);
		return 1;
	}
	if (bnf_result_verify_failed(res) > 0) {
		bnf_output_abort(&out);
		return bnf_api_verify_error(res, c->input, e);
	}
	res->bytes_out = (size_t)(out.written + out.used);
	res->bytes_out_data = out.data ? (size_t)(out.data->written + out.data->used) : 0;
	/* The result first: once the output is in place, nothing may fail. */
	if (result && !(*result = bnf_api_result_new(res, order, c->input, c->output))) {
		bnf_output_abort(&out);
		return bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory", c->input);
	}
	return c->output ? bnf_output_commit(&out) : bnf_output_commit_memory(&out, c->out, c->out_len);
}

/* Every entry point: read, fold, write (when asked to) and make the
 * result.  A model is first folded without the scan for NaN, Inf and
 * overflow when it is written where it can be taken back (a temp file, a
 * buffer) and read again (a file, a buffer): if scaling meets one, or a
 * fusion fails verification, everything is done again with the scan,
 * which decides.  Not into stdout, a FIFO or a device, nor from stdin. */
static bnfold_status run(const api_call *c, bnfold_result **result, bnfold_error *err, bnf_err *e)
{
	bnf_input in = {0};
	bnf_strlist order = {0};
	bnf_result res = {0};
	bool defer = c->buffer ? c->out != NULL : c->output && strcmp(c->input, "-") != 0 && regular_output(c->output);
	bool writes = c->output || c->out;
	int r;

	for (;;) {
		in.fd = -1;
		if ((r = read_and_fold(c, defer, &in, &res, &order, e)) < 0)
			goto out;
		if (defer && (res.unscanned_nonfinite || bnf_result_verify_failed(&res) > 0))
			r = 1;
		else if (bnf_result_verify_start(&res), bnf_result_verify_failed(&res) > 0)
			r = bnf_api_verify_error(&res, c->input, e);
		else
			r = writes ? write_output(c, &in, &res, &order, defer, result, e) : 0;
		if (r != 1)
			break;
		bnf_result_free(&res);
		bnf_input_close(&in);
		bnf_strlist_free(&order);
		defer = false;
	}
	if ((r == 0 || e->code == BNFOLD_E_VERIFY) && result && !*result &&
	    !(*result = bnf_api_result_new(&res, &order, c->input, c->output)))
		r = bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory", c->input);
out:
	if (r < 0)
		unexplained_failure(e, c->input);
	bnf_result_free(&res);
	bnf_input_close(&in);
	bnf_strlist_free(&order);
	return bnf_api_finish(e, result, err);
}

/* fold_file and inspect_file: output NULL writes nothing. */
static bnfold_status run_file(const char *input, const char *output, const bnfold_options *opt,
			      bnfold_result **result, bnfold_error *err)
{
	bnf_err e = {0};
	api_call c = {.input = input, .output = output};

	if (result)
		*result = NULL;
	if (read_options(opt, &c.o, &e) < 0)
		goto fail;
	if (!input) {
		bnf_fail(&e, BNFOLD_E_INVALID, "no input given");
		goto fail;
	}
	if (output && !c.o.replace_input && bnf_same_file(input, output)) {
		bnf_fail(&e, BNFOLD_E_INVALID, "%s: refusing to overwrite the input", output);
		goto fail;
	}
	return run(&c, result, err, &e);
fail:
	return bnf_api_finish(&e, result, err);
}

bnfold_status bnfold_fold_file(const char *input, const char *output, const bnfold_options *opt,
			       bnfold_result **result, bnfold_error *err)
{
	if (!output) {
		bnf_err e = {0};
		bnf_fail(&e, BNFOLD_E_INVALID, "no output given");
		if (result)
			*result = NULL;
		return bnf_api_finish(&e, result, err);
	}
	return run_file(input, output, opt, result, err);
}

bnfold_status bnfold_inspect_file(const char *input, const bnfold_options *opt, bnfold_result **result,
				  bnfold_error *err)
{
	return run_file(input, NULL, opt, result, err);
}

/* fold_buffer and inspect_buffer: out NULL writes nothing.  The model's
 * large payloads are read where they are, in data. */
static bnfold_status run_buffer(const void *data, size_t len, const char *name, void **out, size_t *out_len,
				const bnfold_options *opt, bnfold_result **result, bnfold_error *err)
{
	bnf_err e = {0};
	api_call c = {.input = name ? name : "<buffer>", .buffer = true, .data = data ? data : "", .len = len,
		      .out = out, .out_len = out_len};

	if (result)
		*result = NULL;
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (read_options(opt, &c.o, &e) < 0)
		goto fail;
	if ((!data && len) || (out && !out_len)) {
		bnf_fail(&e, BNFOLD_E_INVALID, "%s: no buffer given", c.input);
		goto fail;
	}
	return run(&c, result, err, &e);
fail:
	return bnf_api_finish(&e, result, err);
}

bnfold_status bnfold_fold_buffer(const void *in, size_t in_len, const char *name, void **out, size_t *out_len,
				 const bnfold_options *opt, bnfold_result **result, bnfold_error *err)
{
	if (!out || !out_len) {
		bnf_err e = {0};
		bnf_fail(&e, BNFOLD_E_INVALID, "no output buffer given");
		if (out) /* on error *out is NULL, as for every other error */
			*out = NULL;
		if (out_len)
			*out_len = 0;
		if (result)
			*result = NULL;
		return bnf_api_finish(&e, result, err);
	}
	return run_buffer(in, in_len, name, out, out_len, opt, result, err);
}

bnfold_status bnfold_inspect_buffer(const void *in, size_t in_len, const char *name, const bnfold_options *opt,
				    bnfold_result **result, bnfold_error *err)
{
	return run_buffer(in, in_len, name, NULL, NULL, opt, result, err);
}

bnfold_status bnfold_write_file(const char *path, const void *data, size_t len, const bnfold_options *opt,
				bnfold_error *err)
{
	bnf_err e = {0};
	bnfold_options o;
	int r = -1;

	if (read_options(opt, &o, &e) < 0)
		goto done;
	if (!path || (!data && len)) {
		bnf_fail(&e, BNFOLD_E_INVALID, "no file or no data given");
		goto done;
	}
	r = bnf_write_file(path, data, len, o.sync, o.tempfile, o.tempfile_ctx, &e);
done:
	if (r < 0)
		unexplained_failure(&e, path ? path : "-");
	return bnf_api_finish(&e, NULL, err);
}
