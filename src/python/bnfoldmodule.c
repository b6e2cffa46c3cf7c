/* bnfold._bnfold: the CPython extension over bnfold.h, with the limited
 * API of Python 3.11 (one build serves 3.11 and later).  It only moves
 * bytes and options across: each call returns (status, message, report,
 * output) and the Python package (bnfold/__init__.py) turns a status into
 * an exception, the report's JSON into a Report, the options into names.
 * The GIL is released while the library runs; a buffer passed in stays
 * exported (so it cannot be resized) until the call is over. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "bnfold.h"

/* The keyword options every call takes, in the order of kw_options. */
typedef struct call_options {
	int fold_overridable, verify, stream, inline_external, replace_input;
	double tolerance;
	int sync, threads;
	Py_ssize_t max_new_bytes;
} call_options;

static int to_library(const call_options *c, bnfold_options *o)
{
	bnfold_options_init(o);
	if (c->max_new_bytes < 0) {
		PyErr_SetString(PyExc_ValueError, "max_new_bytes must be >= 0");
		return -1;
	}
	o->fold_overridable = c->fold_overridable;
	o->verify = c->verify;
	o->tolerance = c->tolerance;
	o->stream = c->stream;
	o->inline_external = c->inline_external;
	o->replace_input = c->replace_input;
	o->sync = (bnfold_sync)c->sync;
	o->threads = c->threads;
	o->max_new_bytes = (size_t)c->max_new_bytes;
	return 0;
}

static void defaults(call_options *c)
{
	bnfold_options o;
	bnfold_options_init(&o);
	c->fold_overridable = o.fold_overridable;
	c->verify = o.verify;
	c->tolerance = o.tolerance;
	c->stream = o.stream;
	c->inline_external = o.inline_external;
	c->replace_input = o.replace_input;
	c->sync = (int)o.sync;
	c->threads = o.threads;
	c->max_new_bytes = (Py_ssize_t)o.max_new_bytes;
}

/* What a call left: the library's error and result, and the output: a
 * bytes object the library wrote into (bnfold_options.out_alloc), out
 * pointing into it. */
typedef struct outcome {
	bnfold_status status;
	bnfold_error err;
	bnfold_result *result;
	void *out;
	size_t out_len;
	PyObject *bytes;
	bool borrowed;       /* out is in bytes (set by finish) */
	PyThreadState *save; /* the calling thread's state while the library runs */
} outcome;

/* bnfold_options.out_alloc for fold_buffer: the output is made a bytes
 * object of its exact size, and the library writes into it, so it is never
 * copied (input + output + the working set).  Called on the calling
 * thread, which let go of the GIL with PyEval_SaveThread: it takes it back
 * with that same thread state (so in whichever interpreter the call came
 * from) for as long as it takes to make the object.  A second call (the
 * library folds again, scanning first) drops the first object. */
static void *alloc_bytes(size_t size, void *ctx)
{
	outcome *o = ctx;
	void *p = NULL;

	if (size > (size_t)PY_SSIZE_T_MAX)
		return NULL;
	PyEval_RestoreThread(o->save);
	Py_CLEAR(o->bytes);
	if ((o->bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)) != NULL)
		p = PyBytes_AsString(o->bytes);
	if (!p) {
		PyErr_Clear(); /* the call fails with BNFOLD_E_NOMEM, which the package raises */
		Py_CLEAR(o->bytes);
	}
	o->save = PyEval_SaveThread();
	return p;
}

/* Text from the library as str: names in a model may be any bytes. */
static PyObject *text(const char *s)
{
	if (!s)
		Py_RETURN_NONE;
	return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* An error message, which starts with a path: decoded as os.fsdecode
 * decodes paths, so that the package finds the path it was given in it. */
static PyObject *message_text(const char *s)
{
	return PyUnicode_DecodeFSDefault(s);
}

static PyObject *order_of(size_t order)
{
	if (order == SIZE_MAX)
		Py_RETURN_NONE;
	return PyLong_FromSize_t(order);
}

/* One row of what --list shows: (model_order, action, layer, node, node_op,
 * pattern, channels, dtype, reason, graph, output, shapes, message). */
static PyObject *fusion_row(const bnfold_fusion *f)
{
	return Py_BuildValue("(NsNNNNnNONNNO)", order_of(f->model_order), "fold", text(f->layer_label),
			     text(f->node_label), text(f->node_op), text(f->pattern), (Py_ssize_t)f->channels,
			     text(f->dtype), Py_None, text(f->graph), text(f->node_output), text(f->shapes), Py_None);
}

static PyObject *skip_row(const bnfold_skip *s)
{
	return Py_BuildValue("(NsNNNOOONNNNN)", order_of(s->model_order), "skip", text(s->layer_label),
			     text(s->bn_label), text(s->node_op), Py_None, Py_None, Py_None, text(s->reason),
			     text(s->graph), text(s->bn_output), text(s->shapes), text(s->message));
}

/* The rows of every fusion, then of every skip, in the result's order. */
static PyObject *rows_of(const bnfold_result *r)
{
	size_t nf = r ? bnfold_result_n_fusions(r) : 0, ns = r ? bnfold_result_n_skips(r) : 0;
	PyObject *rows = PyList_New((Py_ssize_t)(nf + ns));

	for (size_t i = 0; rows && i < nf + ns; i++) {
		PyObject *row = i < nf ? fusion_row(bnfold_result_fusion(r, i)) : skip_row(bnfold_result_skip(r, i - nf));
		if (!row || PyList_SetItem(rows, (Py_ssize_t)i, row) < 0) {
			Py_DECREF(rows);
			return NULL;
		}
	}
	return rows;
}

/* (status, message, report JSON or None, output bytes or None, rows); frees o. */
static PyObject *finish(outcome *o)
{
	PyObject *msg = NULL, *json = NULL, *out = NULL, *rows = NULL, *ret = NULL;
	const char *j = o->result ? bnfold_result_json(o->result) : NULL;

	/* out is in the bytes object when the library wrote where out_alloc
	 * said; otherwise it is the library's (or NULL) */
	o->borrowed = o->out && o->bytes && o->out == PyBytes_AsString(o->bytes) &&
		      (Py_ssize_t)o->out_len == PyBytes_Size(o->bytes);
	if (o->result && !j) {
		PyErr_NoMemory();
		goto out;
	}
	if (!(msg = message_text(o->err.message)) || !(json = text(j)))
		goto out;
	if (o->borrowed) { /* written in place: the object is the output */
		out = o->bytes;
		o->bytes = NULL;
		o->out = NULL;
	} else if (o->out) { /* the library's own memory (one that does not know out_alloc) */
		out = PyBytes_FromStringAndSize(o->out, (Py_ssize_t)o->out_len);
	} else {
		out = Py_NewRef(Py_None);
	}
	if (out && (rows = rows_of(o->result)))
		ret = Py_BuildValue("(iOOOO)", (int)o->status, msg, json, out, rows);
out:
	Py_XDECREF(rows);
	Py_XDECREF(msg);
	Py_XDECREF(json);
	Py_XDECREF(out);
	Py_XDECREF(o->bytes); /* a failed call's, or an earlier pass's */
	if (!o->borrowed)
		bnfold_free(o->out);
	bnfold_result_free(o->result);
	return ret;
}

/* The option keywords, after the positional arguments of each call. */
#define OPTION_KEYWORDS "fold_overridable", "verify", "tolerance", "stream", "inline_external", "sync", \
	"replace_input", "threads", "max_new_bytes"
#define OPTION_FORMAT "|$ppdppipin"
#define OPTION_ARGS(c) &(c)->fold_overridable, &(c)->verify, &(c)->tolerance, &(c)->stream, \
	&(c)->inline_external, &(c)->sync, &(c)->replace_input, &(c)->threads, &(c)->max_new_bytes

/* A path argument: str, bytes or os.PathLike, through the file system encoding. */
static int path_arg(PyObject *obj, void *addr)
{
	return PyUnicode_FSConverter(obj, addr);
}

/* A name for messages and the report: str or None. */
static const char *name_of(PyObject *name)
{
	return name && name != Py_None ? PyUnicode_AsUTF8AndSize(name, NULL) : "<buffer>";
}

/* fold_buffer(data, name, **options) and inspect_buffer(...): data is any
 * C-contiguous bytes-like object. */
static PyObject *run_buffer(PyObject *args, PyObject *kw, bool fold)
{
	static char *kwlist[] = {"data", "name", OPTION_KEYWORDS, NULL};
	PyObject *data, *name = Py_None;
	Py_buffer view;
	call_options c;
	bnfold_options lib;
	outcome o = {0};
	const char *cname;

	defaults(&c);
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO" OPTION_FORMAT, kwlist, &data, &name, OPTION_ARGS(&c)))
		return NULL;
	if (name != Py_None && !PyUnicode_Check(name))
		return PyErr_Format(PyExc_TypeError, "name must be str or None");
	if (!(cname = name_of(name)) || to_library(&c, &lib) < 0)
		return NULL;
	if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
		return NULL;
	if (fold) {
		lib.out_alloc = alloc_bytes;
		lib.out_alloc_ctx = &o;
	}
	o.save = PyEval_SaveThread();
	if (fold)
		o.status = bnfold_fold_buffer(view.buf, (size_t)view.len, cname, &o.out, &o.out_len, &lib, &o.result,
					      &o.err);
	else
		o.status = bnfold_inspect_buffer(view.buf, (size_t)view.len, cname, &lib, &o.result, &o.err);
	PyEval_RestoreThread(o.save);
	PyBuffer_Release(&view);
	return finish(&o);
}

static PyObject *fold_buffer(PyObject *self, PyObject *args, PyObject *kw)
{
	(void)self;
	return run_buffer(args, kw, true);
}

static PyObject *inspect_buffer(PyObject *self, PyObject *args, PyObject *kw)
{
	(void)self;
	return run_buffer(args, kw, false);
}

/* Run a file call with the GIL released; src and dst (NULL for inspect)
 * are bytes objects from path_arg. */
static PyObject *run_file(PyObject *src, PyObject *dst, const call_options *c)
{
	bnfold_options lib;
	outcome o = {0};
	const char *s, *d = NULL;

	if (to_library(c, &lib) < 0 || !(s = PyBytes_AsString(src)) || (dst && !(d = PyBytes_AsString(dst))))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	if (d)
		o.status = bnfold_fold_file(s, d, &lib, &o.result, &o.err);
	else
		o.status = bnfold_inspect_file(s, &lib, &o.result, &o.err);
	Py_END_ALLOW_THREADS
	return finish(&o);
}

static PyObject *fold_file(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"src", "dst", OPTION_KEYWORDS, NULL};
	PyObject *src = NULL, *dst = NULL, *ret = NULL;
	call_options c;

	(void)self;
	defaults(&c);
	if (PyArg_ParseTupleAndKeywords(args, kw, "O&O&" OPTION_FORMAT, kwlist, path_arg, &src, path_arg, &dst,
					OPTION_ARGS(&c)))
		ret = run_file(src, dst, &c);
	Py_XDECREF(src);
	Py_XDECREF(dst);
	return ret;
}

static PyObject *inspect_file(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"src", OPTION_KEYWORDS, NULL};
	PyObject *src = NULL, *ret = NULL;
	call_options c;

	(void)self;
	defaults(&c);
	if (PyArg_ParseTupleAndKeywords(args, kw, "O&" OPTION_FORMAT, kwlist, path_arg, &src, OPTION_ARGS(&c)))
		ret = run_file(src, NULL, &c);
	Py_XDECREF(src);
	return ret;
}

static PyObject *version(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	return PyUnicode_FromString(bnfold_version());
}

/* ((code, text), ...): every reason code a skip may carry. */
static PyObject *reasons(PyObject *self, PyObject *unused)
{
	size_t n = bnfold_reason_count();
	PyObject *t = PyTuple_New((Py_ssize_t)n);

	(void)self;
	(void)unused;
	for (size_t i = 0; t && i < n; i++) {
		PyObject *row = Py_BuildValue("(ss)", bnfold_reason_code(i), bnfold_reason_text(i));
		if (!row || PyTuple_SetItem(t, (Py_ssize_t)i, row) < 0) {
			Py_DECREF(t);
			return NULL;
		}
	}
	return t;
}

static PyObject *status_name(PyObject *self, PyObject *arg)
{
	long code = PyLong_AsLong(arg);

	(void)self;
	if (code == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(bnfold_status_name(code < INT_MIN || code > INT_MAX ? -1 : (int)code));
}

#define KW_FUNC(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef methods[] = {
	{"fold_buffer", KW_FUNC(fold_buffer), METH_VARARGS | METH_KEYWORDS,
	 "fold_buffer(data, name, **options) -> (status, message, report_json, output, rows)"},
	{"inspect_buffer", KW_FUNC(inspect_buffer), METH_VARARGS | METH_KEYWORDS,
	 "inspect_buffer(data, name, **options) -> (status, message, report_json, None, rows)"},
	{"fold_file", KW_FUNC(fold_file), METH_VARARGS | METH_KEYWORDS,
	 "fold_file(src, dst, **options) -> (status, message, report_json, None, rows)"},
	{"inspect_file", KW_FUNC(inspect_file), METH_VARARGS | METH_KEYWORDS,
	 "inspect_file(src, **options) -> (status, message, report_json, None, rows)"},
	{"version", version, METH_NOARGS, "version() -> the library's version string"},
	{"reasons", reasons, METH_NOARGS, "reasons() -> ((code, text), ...) of every skip reason"},
	{"status_name", status_name, METH_O, "status_name(code) -> the name of a status code"},
	{NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *m)
{
	return PyModule_AddIntConstant(m, "OK", BNFOLD_OK) < 0 ||
	       PyModule_AddIntConstant(m, "E_INVALID", BNFOLD_E_INVALID) < 0 ||
	       PyModule_AddIntConstant(m, "E_IO", BNFOLD_E_IO) < 0 ||
	       PyModule_AddIntConstant(m, "E_NOT_ONNX", BNFOLD_E_NOT_ONNX) < 0 ||
	       PyModule_AddIntConstant(m, "E_NOMEM", BNFOLD_E_NOMEM) < 0 ||
	       PyModule_AddIntConstant(m, "E_VERIFY", BNFOLD_E_VERIFY) < 0 ||
	       PyModule_AddIntConstant(m, "SYNC_ALWAYS", BNFOLD_SYNC_ALWAYS) < 0 ||
	       PyModule_AddIntConstant(m, "SYNC_NEVER", BNFOLD_SYNC_NEVER) < 0 ||
	       PyModule_AddIntConstant(m, "SYNC_AUTO", BNFOLD_SYNC_AUTO) < 0
		       ? -1 : 0;
}

static PyModuleDef_Slot slots[] = {
	{Py_mod_exec, (void *)exec_module},
	{0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "bnfold._bnfold",
	.m_doc = "The C side of the bnfold package (use the functions of bnfold instead).",
	.m_size = 0,
	.m_methods = methods,
	.m_slots = slots,
};

PyMODINIT_FUNC PyInit__bnfold(void)
{
	return PyModuleDef_Init(&module);
}
