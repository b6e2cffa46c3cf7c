/* libbnfold: fold BatchNormalization nodes of ONNX models into the layer
 * next to them, exactly, and report what was folded and why the rest was not.
 *
 * The library prints nothing, never exits, reads no environment variable and
 * keeps no mutable global state (beyond a one-time probe of the CPU's
 * features): two threads may fold two models at once, each with its own
 * options, result and error.  Every function documents its contract here.
 *
 *   bnfold_options o;
 *   bnfold_result *r = NULL;
 *   bnfold_error e;
 *   bnfold_options_init(&o);
 *   if (bnfold_fold_file("in.onnx", "out.onnx", &o, &r, &e) != BNFOLD_OK)
 *           fprintf(stderr, "%s\n", e.message);
 *   bnfold_result_free(r);
 *
 * Build with `pkg-config --cflags --libs bnfold`.  A result's JSON follows
 * share/bnfold/report.schema.json (bnfold_result_json). */
#ifndef BNFOLD_H
#define BNFOLD_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNFOLD_VERSION_MAJOR 0
#define BNFOLD_VERSION_MINOR 1
#define BNFOLD_VERSION_PATCH 0
#define BNFOLD_VERSION_NUMBER (BNFOLD_VERSION_MAJOR * 10000 + BNFOLD_VERSION_MINOR * 100 + BNFOLD_VERSION_PATCH)
#define BNFOLD_VERSION_STRING "0.1.0"

#if defined(__GNUC__) && __GNUC__ >= 4
#define BNFOLD_API __attribute__((visibility("default")))
#else
#define BNFOLD_API
#endif

/* The library's version as a string ("0.1.0") and as a number (100 for
 * 0.1.0): that of the library loaded, which may differ from the macros of
 * the header a program was compiled with. */
BNFOLD_API const char *bnfold_version(void);
BNFOLD_API unsigned bnfold_version_number(void);

/* --- errors --- */

typedef enum bnfold_status {
	BNFOLD_OK = 0,
	BNFOLD_E_INVALID = 1,   /* an argument of the call is wrong (NULL, options of another size...),
				 * or asks for what cannot be done (external data to standard output...) */
	BNFOLD_E_IO = 2,        /* a file cannot be opened, read, written or renamed */
	BNFOLD_E_NOT_ONNX = 3,  /* the input is not a well-formed ONNX model (or breaks a limit) */
	BNFOLD_E_NOMEM = 4,     /* memory or address space ran out */
	BNFOLD_E_VERIFY = 5,    /* a fusion failed its numeric check: nothing was written */
} bnfold_status;

/* What went wrong, filled by every call that takes one (may be NULL).
 * message is one line without a trailing newline; it names the file (or
 * the buffer's name) it is about, as in "model.onnx: not an ONNX model".
 * It may hold any byte a model's names hold: escape control characters
 * before showing it on a terminal.  On BNFOLD_OK, code is 0 and message "". */
typedef struct bnfold_error {
	bnfold_status code;
	char message[1024];
} bnfold_error;

/* "ok", "invalid_argument", "io_error", "not_onnx", "out_of_memory",
 * "verify_failed"; "unknown" for any other value. */
BNFOLD_API const char *bnfold_status_name(int code);

/* --- options --- */

/* When a regular output is fsync'd before its temp file is renamed into
 * place.  The rename itself is always atomic: other programs see the old
 * file or the new one.  Syncing decides what a crash or power loss can
 * leave: without it, a file written just before may be empty or partial.
 * An output and the external data file written beside it (OUTPUT.data)
 * are synced both or neither. */
typedef enum bnfold_sync {
	BNFOLD_SYNC_ALWAYS = 0, /* always, new files too */
	BNFOLD_SYNC_NEVER = 1,  /* never: after a crash, even a file replaced in place
				 * may be empty or partial */
	BNFOLD_SYNC_AUTO = 2,   /* only when the rename replaces an existing file (in
				 * place, or over an earlier output), so that a crash
				 * leaves the old file or the new one, never neither; a
				 * new file is not synced (lost in a crash, it is written
				 * again from its input, as after cp) */
} bnfold_sync;

/* Options of a call.  Always start from bnfold_options_init(), then set
 * fields: fields are only ever added at the end, and the library reads
 * only those the caller's header knew (`size`). */
typedef struct bnfold_options {
	size_t size;             /* set by bnfold_options_init: sizeof the caller's struct */
	bool fold_overridable;   /* also fold initializers listed as graph inputs (IR >= 4),
				  * removing those inputs (default false) */
	bool verify;             /* check every fusion numerically; nothing is written
				  * unless every check passes (default true) */
	double tolerance;        /* relative error a fusion may show; < 0 (default):
				  * about 2 rounding units of its type */
	bool stream;             /* leave large weights in the input (its file, or the
				  * caller's buffer) and copy or transform them chunk by
				  * chunk while writing, so memory does not grow with the
				  * model (default true; the output is the same either way) */
	bool inline_external;    /* write weights kept in external data files into the
				  * output model itself; by default they go to OUTPUT.data
				  * beside a regular output file (default false) */
	bnfold_sync sync;        /* default BNFOLD_SYNC_AUTO (it was
				  * BNFOLD_SYNC_ALWAYS, still the value 0); another
				  * value: BNFOLD_E_INVALID */
	bool replace_input;      /* bnfold_fold_file may write over its input (in place);
				  * otherwise that is refused (default false) */
	int threads;             /* threads a call may use: 0 (default) = two where the
				  * machine has two CPUs or more, 1 = only the
				  * calling thread; the result is the same for any number */
	bool no_simd;            /* do not use AVX2 even where the CPU has it (the
				  * result is the same; for testing) */
	size_t max_new_bytes;    /* bytes that new weight tensors (copies of shared
				  * weights...) may take in all; 0 (default): the input's
				  * size or 256 MiB, whichever is larger */
	/* Called for each temp file an output is written to (a call may have
	 * two at once: the model and its external data file): with exists
	 * true right after it is created, and with exists false and the same
	 * path once it is renamed or removed.  The signal mask of the calling
	 * thread blocks SIGINT, SIGTERM and SIGHUP in between the creation and
	 * the first call.  A program that removes half-written output when a
	 * signal arrives keeps the paths (NULL: nobody is told). */
	void (*tempfile)(const char *path, bool exists, void *ctx);
	void *tempfile_ctx;
	/* Where bnfold_fold_buffer writes the folded model (NULL, the default:
	 * memory of the library's, freed with bnfold_free).  Called on the
	 * calling thread with the model's exact size, before it is written;
	 * returns memory for that many bytes (owned by the caller: the library
	 * never frees it), or NULL, and the call fails with BNFOLD_E_NOMEM.
	 * On success *out points at it.  A call that folds a second time
	 * (scanning first, see bnfold_fold_file) asks again: only the memory
	 * asked for last holds the output.  A call may still fail after it
	 * asked (a check over its tolerance): *out is then NULL, and the
	 * memory is the caller's to release as ever.  The other calls never
	 * ask.  A binding so builds the output in an object of its own
	 * language, without a copy. */
	void *(*out_alloc)(size_t size, void *ctx);
	void *out_alloc_ctx;
} bnfold_options;

/* Fill *o with the defaults above; sets o->size. */
BNFOLD_API void bnfold_options_init_sized(bnfold_options *o, size_t size);
#define bnfold_options_init(o) bnfold_options_init_sized((o), sizeof(bnfold_options))

/* --- the result of a call --- */

typedef struct bnfold_result bnfold_result;

/* Counts of one call. */
typedef struct bnfold_counts {
	size_t bn_found;             /* BatchNormalization nodes in the model, subgraphs included */
	size_t bn_folded;            /* of them, folded (or, for bnfold_inspect_*, that would fold) */
	size_t affine_folded;        /* per-channel Mul/Add folded into the layer before them */
	size_t skipped;              /* BatchNormalization nodes left, each with a reason */
	size_t nodes_before, nodes_after;
	size_t graph_inputs_removed; /* with fold_overridable */
	size_t verified;             /* fusions checked numerically */
	size_t verify_failed;        /* of them, failed (the call returned BNFOLD_E_VERIFY) */
} bnfold_counts;

/* The numeric check of one fusion (docs/verification.md). */
typedef struct bnfold_check {
	bool done;               /* the fusion was checked (verify on) */
	bool ok;                 /* max_rel_err <= tolerance, and problem is NULL */
	double max_abs_err, max_rel_err, tolerance;
	size_t outputs, terms, worst_channel;
	const char *problem;     /* why the fusion could not be modelled, or NULL */
} bnfold_check;

/* One fusion: a BatchNormalization (is_bn) or a per-channel Mul/Add that
 * went into a layer.  Strings belong to the result. */
typedef struct bnfold_fusion {
	bool is_bn;
	const char *pattern;     /* "conv_bn", "gemm_bn", "bn_conv", "conv_mul", ... */
	const char *graph;       /* the graph's name ("main" when it has none), a subgraph's
				  * name or place ("main/loop/body"), or "function NAME" */
	const char *layer, *layer_op;   /* the layer's name and op type */
	const char *layer_op_after;     /* its op type after folding ("Gemm" for a MatMul that became one) */
	const char *node, *node_op;     /* the node that went: name and op type */
	const char *node_output;        /* its output name */
	const char *weight, *bias;      /* the layer's weight and bias after folding */
	size_t channels;
	const char *dtype;       /* "float32", "float16", ... */
	double epsilon;          /* the BatchNormalization's epsilon (is_bn) */
	bool bias_created, weight_copied;
	bnfold_check check;
	size_t model_order;      /* position of the node among the model's BatchNormalization
				  * nodes in file order (subgraphs where their node is);
				  * SIZE_MAX when it is not one */
	const char *shapes;      /* what bnfold inferred of the shapes it read: "layer input [..],
				  * layer output [..], input [..], parameter [..]" */
	/* The layer and the node named for people: the name, else
	 * "(unnamed OP, output NAME)". */
	const char *layer_label, *node_label;
} bnfold_fusion;

/* One BatchNormalization left in place, and why; or (is_bn false) a Mul or
 * Add of a constant next to a layer that was not folded into it. */
typedef struct bnfold_skip {
	const char *graph;
	const char *bn, *bn_output;
	const char *layer;       /* the layer it would have folded into, or NULL */
	const char *reason;      /* a stable code: "no_linear_producer", ... (docs/reasons.md,
				  * "Why a BN is skipped"; bnfold_reason_code lists them) */
	const char *message;     /* what exactly, in words */
	size_t model_order;      /* as in bnfold_fusion */
	bool is_bn;
	const char *node_op;     /* "BatchNormalization", "Mul" or "Add" */
	const char *shapes;      /* as in bnfold_fusion */
	const char *layer_label; /* as in bnfold_fusion; NULL when layer is */
	const char *bn_label;    /* the node named for people, as in bnfold_fusion */
} bnfold_skip;

BNFOLD_API void bnfold_result_counts(const bnfold_result *r, bnfold_counts *c);
BNFOLD_API size_t bnfold_result_n_fusions(const bnfold_result *r);
/* Fusion i (< bnfold_result_n_fusions), valid until the result is freed. */
BNFOLD_API const bnfold_fusion *bnfold_result_fusion(const bnfold_result *r, size_t i);
BNFOLD_API size_t bnfold_result_n_skips(const bnfold_result *r);
BNFOLD_API const bnfold_skip *bnfold_result_skip(const bnfold_result *r, size_t i);
/* The nodes of the model by op type, before and after folding (the graph,
 * its subgraphs and the function bodies, as nodes_before and nodes_after
 * count them; for bnfold_inspect_*, after is what a fold would leave): one
 * row per op type and domain, sorted by op type, then domain.
 * bnfold_result_op_type fills what is asked for (each pointer may be NULL)
 * for row i < bnfold_result_n_op_types(r) and returns 0, or returns -1
 * and fills nothing past the last row.  domain is "" for the default
 * domain ("ai.onnx"); strings belong to the result. */
BNFOLD_API size_t bnfold_result_n_op_types(const bnfold_result *r);
BNFOLD_API int bnfold_result_op_type(const bnfold_result *r, size_t i, const char **domain, const char **op_type,
				     size_t *before, size_t *after);
/* Sizes in bytes of the input model file and of the external data files
 * it reads, and of the output model and of the data file written beside it
 * (0 when there is none, and both 0 for bnfold_inspect_*).  Each pointer
 * may be NULL. */
BNFOLD_API void bnfold_result_sizes(const bnfold_result *r, size_t *model_before, size_t *data_before,
				    size_t *model_after, size_t *data_after);
/* This result as one input's entry of the JSON report: the object the
 * bnfold program lists in its report's "inputs" (schema:
 * share/bnfold/report.schema.json, definitions/input; docs/report.md).
 * UTF-8, owned by the result; NULL only when memory runs out. */
BNFOLD_API const char *bnfold_result_json(bnfold_result *r);
/* Free a result; NULL is fine. */
BNFOLD_API void bnfold_result_free(bnfold_result *r);

/* Every reason code a skip may carry, in a stable order: code i for i in
 * [0, bnfold_reason_count()), with its one-line explanation. */
BNFOLD_API size_t bnfold_reason_count(void);
BNFOLD_API const char *bnfold_reason_code(size_t i);
BNFOLD_API const char *bnfold_reason_text(size_t i);

/* --- entry points ---
 * Each returns BNFOLD_OK or an error code, fills *err when err is not NULL,
 * and sets *result (when result is not NULL) to a new result the caller
 * frees, or to NULL on an error other than BNFOLD_E_VERIFY.  On
 * BNFOLD_E_VERIFY the result tells which fusion failed its check. */

/* Fold the model at input and write it to output, through a temp file in
 * output's directory renamed into place only when all went well (special
 * files such as /dev/null or a FIFO are written directly).  "-" as input
 * reads standard input, "-" as output writes standard output.  Weights in
 * external data files are read beside the input and written to
 * OUTPUT.data (or inline: see options).  On any error nothing is left at
 * output and an existing file there is untouched.  A model where nothing
 * folds is copied byte for byte. */
BNFOLD_API bnfold_status bnfold_fold_file(const char *input, const char *output, const bnfold_options *opt,
					  bnfold_result **result, bnfold_error *err);

/* Fold a model held in memory (in_len bytes at in) into a new buffer:
 * *out (free it with bnfold_free; or memory of opt->out_alloc) of
 * *out_len bytes.  name stands for the
 * model in messages and the report (NULL: "<buffer>").  The model must
 * hold its weights (external data cannot be resolved without a file: a
 * BatchNormalization whose layer's weight is there is skipped).  On
 * error *out is NULL and *out_len 0.  The weights are read where they are
 * in `in` (which must not change during the call) and *out is allocated
 * once, at its final size: the call takes the input, the output and a
 * working set of a few MiB, whatever the model's size (with
 * opt->stream, the default). */
BNFOLD_API bnfold_status bnfold_fold_buffer(const void *in, size_t in_len, const char *name, void **out,
					    size_t *out_len, const bnfold_options *opt, bnfold_result **result,
					    bnfold_error *err);

/* Find what would fold, checking each fusion as a fold would, and write
 * nothing: what `bnfold --check` and `bnfold --list` report.  Memory as
 * for the fold, without an output. */
BNFOLD_API bnfold_status bnfold_inspect_file(const char *input, const bnfold_options *opt, bnfold_result **result,
					     bnfold_error *err);
BNFOLD_API bnfold_status bnfold_inspect_buffer(const void *in, size_t in_len, const char *name,
					       const bnfold_options *opt, bnfold_result **result,
					       bnfold_error *err);

/* Write len bytes at data to path the way outputs are written: a regular
 * file through a temp file renamed into place (synced as opt->sync says),
 * a special file directly, "-" to standard output; on error nothing is
 * left at path.  For what goes beside a model, such as its report. */
BNFOLD_API bnfold_status bnfold_write_file(const char *path, const void *data, size_t len, const bnfold_options *opt,
					   bnfold_error *err);

/* Free a buffer returned by bnfold_fold_buffer; NULL is fine. */
BNFOLD_API void bnfold_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
