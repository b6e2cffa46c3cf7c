/* Per-channel kernels over a tensor view (tensor.h): scaling a weight into
 * its stored bytes (what folding writes), and the largest |x| of every
 * channel (what folding checks first).  They read views and nothing reads
 * them back; this header names the view types by their struct tags only,
 * so that tensor.h can include it for files that include tensor.h alone. */
#ifndef BNF_TRANSFORM_H
#define BNF_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

struct bnf_layout;
struct bnf_transform;
struct bnf_tview;
struct bnf_window;

/* Apply the transform to elements [first, first + n) of `src` and store them,
 * rounded once, into out (n * dtype size bytes); scratch holds n doubles.
 * Bytes of src left in a file are read in place through the caller's
 * window w (source.h), which then stays on them for the next call: a
 * reader going through a payload chunk by chunk, or payload after payload,
 * keeps one window for all of it and drops it when done.  A NULL w reads
 * them with a copy instead.  Returns whether every stored value is finite
 * (a NaN or Inf in src, or a product beyond the dtype's range, is not). */
bool bnf_transform_apply(const struct bnf_transform *tf, const struct bnf_tview *src, size_t first, size_t n,
			 struct bnf_window *w, double *scratch, unsigned char *out);
/* True for a float32, float16 or bfloat16 view whose stored bytes
 * bnf_transform_apply reads in place (raw_data in memory or in a file, on
 * a little-endian host). */
bool bnf_tview_in_place(const struct bnf_tview *v);

/* For each channel of l, the largest |x| of v into maxabs (l->channels
 * values).  Returns 0, 1 when an element is NaN or Inf (*bad = its index),
 * -1 when memory runs out. */
int bnf_tview_channel_maxabs(const struct bnf_tview *v, const struct bnf_layout *l, double *maxabs, size_t *bad);

#endif
