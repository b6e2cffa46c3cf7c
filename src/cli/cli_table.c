/* The tables bnfold prints: --list's table of every BatchNormalization
 * (and Mul/Add next to a layer), and --stats's op types before and after. */
#include "cli_table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"

/* --- the --list table --- */

typedef struct row {
	size_t order;
	const bnfold_fusion *f;
	const bnfold_skip *s;
} row;

static int row_cmp(const void *a, const void *b)
{
	const row *x = a, *y = b;
	return (x->order > y->order) - (x->order < y->order);
}

/* NODE is the node that folds or stays: a BatchNormalization, or a Mul or Add. */
enum { COL_LAYER, COL_NODE, COL_PATTERN, COL_CHANNELS, COL_DTYPE, COL_ACTION, COL_REASON, COL_DETAILS, NCOL };
static const char *const col_names[NCOL] = {"LAYER", "NODE", "PATTERN", "CHANNELS", "DTYPE", "ACTION", "REASON", "DETAILS"};

/* Characters, not bytes, so that UTF-8 names line up. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static char *fusion_details(const bnfold_fusion *f)
{
	return cli_asprintf("graph '%s', output '%s', %s, epsilon %g, weight '%s'%s, bias '%s'%s; shapes: %s", f->graph,
			    f->node_output, f->layer_op, f->epsilon, f->weight, f->weight_copied ? " (copied)" : "",
			    f->bias, f->bias_created ? " (added)" : "", f->shapes);
}

static char *skip_details(const bnfold_skip *s)
{
	return cli_asprintf("graph '%s', output '%s': %s; shapes: %s", s->graph, s->bn_output, s->message, s->shapes);
}

/* The rows of the table, in model order (a row whose BN is not found in
 * the model comes after the others, as reported). */
static row *table_rows(const bnfold_result *r, size_t nrows)
{
	size_t nf = bnfold_result_n_fusions(r);
	row *rows = calloc(nrows + 1, sizeof(*rows));
	if (!rows)
		return NULL;
	for (size_t i = 0; i < nrows; i++) {
		row *w = &rows[i];
		size_t order;
		if (i < nf) {
			w->f = bnfold_result_fusion(r, i);
			order = w->f->model_order;
		} else {
			w->s = bnfold_result_skip(r, i - nf);
			order = w->s->model_order;
		}
		w->order = order != SIZE_MAX ? order : SIZE_MAX / 2 + i;
	}
	qsort(rows, nrows, sizeof(*rows), row_cmp);
	return rows;
}

/* The cells of the table: a heading row, then one per row. */
static char **table_cells(const row *rows, size_t nrows)
{
	char **cells = calloc((nrows + 1) * NCOL, sizeof(*cells));
	if (!cells)
		return NULL;
	for (size_t c = 0; c < NCOL; c++)
		cells[c] = cli_strdup(col_names[c]);
	for (size_t i = 0; i < nrows; i++) {
		char **cl = &cells[(i + 1) * NCOL];
		const bnfold_fusion *f = rows[i].f;
		const bnfold_skip *s = rows[i].s;
		const char *layer = f ? f->layer_label : s->layer_label;
		cl[COL_LAYER] = cli_strdup(layer ? layer : "-");
		cl[COL_NODE] = cli_strdup(f ? f->node_label : s->bn_label);
		cl[COL_PATTERN] = cli_strdup(f ? f->pattern : "-");
		cl[COL_CHANNELS] = f ? cli_asprintf("%zu", f->channels) : cli_strdup("-");
		cl[COL_DTYPE] = cli_strdup(f ? f->dtype : "-");
		cl[COL_ACTION] = cli_strdup(f ? "fold" : "skip");
		cl[COL_REASON] = cli_strdup(f ? "-" : s->reason);
		cl[COL_DETAILS] = f ? fusion_details(f) : skip_details(s);
	}
	return cells;
}

/* Print the cells, columns padded to their widest cell. */
static void print_table(char **cells, size_t nrows, size_t ncol)
{
	size_t width[NCOL] = {0};

	for (size_t i = 0; i <= nrows; i++)
		for (size_t c = 0; c < ncol; c++) {
			size_t w = text_width(cells[i * NCOL + c]);
			width[c] = w > width[c] ? w : width[c];
		}
	for (size_t i = 0; i <= nrows; i++) {
		for (size_t c = 0; c < ncol; c++) {
			const char *cell = cells[i * NCOL + c];
			size_t pad = width[c] - text_width(cell);
			if (c == COL_CHANNELS) /* numbers to the right */
				printf("%*s%s", (int)pad, "", cell);
			else if (c == ncol - 1)
				fputs(cell, stdout);
			else
				printf("%s%*s", cell, (int)pad, "");
			if (c != ncol - 1)
				fputs("  ", stdout);
		}
		putchar('\n');
	}
}

int cli_list_table(const bnfold_result *r, const char *input, bool heading)
{
	size_t nrows = bnfold_result_n_fusions(r) + bnfold_result_n_skips(r);
	size_t ncol = cli_display_level >= 2 ? NCOL : NCOL - 1;
	row *rows = table_rows(r, nrows);
	char **cells = rows ? table_cells(rows, nrows) : NULL;
	int rc = -1;

	for (size_t i = 0; cells && i < (nrows + 1) * NCOL; i++)
		if (!cells[i])
			goto out;
	if (!cells)
		goto out;
	if (heading)
		printf("%s:\n", input);
	print_table(cells, nrows, ncol);
	rc = 0;
out:
	if (cells)
		for (size_t i = 0; i < (nrows + 1) * NCOL; i++)
			free(cells[i]);
	free(cells);
	free(rows);
	if (rc < 0)
		cli_error("%s: out of memory printing the table", input);
	return rc;
}

/* --- the --stats table --- */

/* One row of the op-type table: its cells, already formatted. */
typedef struct stats_row {
	char *name, *before, *after;
} stats_row;

static size_t max_width(size_t w, const char *s)
{
	size_t t = text_width(s);
	return t > w ? t : w;
}

static void stats_row_set(stats_row *row, char *name, char *before, char *after)
{
	row->name = name;
	row->before = before;
	row->after = after;
}

/* The rows: a heading, one per op type, the model file and, when there is
 * one, the external data.  Returns the number made (n_ops + 3 at most); a
 * row whose cells could not be made has a NULL cell. */
static size_t stats_rows(const bnfold_result *r, stats_row *rows, bool written)
{
	size_t n = 0, n_ops = bnfold_result_n_op_types(r), sizes[4];

	stats_row_set(&rows[n++], cli_strdup("OP TYPE"), cli_strdup("BEFORE"), cli_strdup("AFTER"));
	for (size_t i = 0; i < n_ops; i++) {
		const char *domain, *op;
		size_t before, after;
		if (bnfold_result_op_type(r, i, &domain, &op, &before, &after) < 0)
			break;
		stats_row_set(&rows[n++], domain[0] ? cli_asprintf("%s (%s)", op, domain) : cli_strdup(op),
			      cli_asprintf("%zu", before), cli_asprintf("%zu", after));
	}
	bnfold_result_sizes(r, &sizes[0], &sizes[1], &sizes[2], &sizes[3]);
	stats_row_set(&rows[n++], cli_strdup("model file (bytes)"), cli_asprintf("%zu", sizes[0]),
		      written ? cli_asprintf("%zu", sizes[2]) : cli_strdup("-"));
	if (sizes[1] || sizes[3])
		stats_row_set(&rows[n++], cli_strdup("external data (bytes)"), cli_asprintf("%zu", sizes[1]),
			      written ? cli_asprintf("%zu", sizes[3]) : cli_strdup("-"));
	return n;
}

void cli_stats_table(const bnfold_result *r, const char *input, int level, bool written)
{
	size_t n_ops = bnfold_result_n_op_types(r), n, w[3] = {0};
	stats_row *rows;

	if (cli_display_level < level)
		return;
	if (!(rows = calloc(n_ops + 3, sizeof(*rows)))) {
		cli_error("%s: out of memory printing the op types", input);
		return;
	}
	n = stats_rows(r, rows, written);
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].name || !rows[i].before || !rows[i].after) {
			cli_error("%s: out of memory printing the op types", input);
			goto out;
		}
		w[0] = max_width(w[0], rows[i].name);
		w[1] = max_width(w[1], rows[i].before);
		w[2] = max_width(w[2], rows[i].after);
	}
	cli_info(level, "bnfold: %s: op types and file sizes, before and after:", input);
	for (size_t i = 0; i < n; i++) /* names to the left, numbers to the right */
		cli_info(level, "  %s%*s  %*s%s  %*s%s", rows[i].name, (int)(w[0] - text_width(rows[i].name)), "",
			 (int)(w[1] - text_width(rows[i].before)), "", rows[i].before,
			 (int)(w[2] - text_width(rows[i].after)), "", rows[i].after);
out:
	for (size_t i = 0; i < n; i++) {
		free(rows[i].name);
		free(rows[i].before);
		free(rows[i].after);
	}
	free(rows);
}
