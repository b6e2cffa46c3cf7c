/* The command line's three jobs, one input at a time: fold (write a model),
 * check (CI gate) and list (inspection table).  main.c parses the options
 * and decides exit codes; this file calls the library for each input and
 * prints what a user reads (as zstd's fileio.c does for zstdcli.c). */
#ifndef BNF_CLI_RUN_H
#define BNF_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "bnfold.h"
#include "report_doc.h"

typedef enum bnf_job {
	BNF_JOB_FOLD,  /* write the folded model */
	BNF_JOB_CHECK, /* write no model; list each BN that would fold */
	BNF_JOB_LIST,  /* write no model; a table of every BN on stdout */
} bnf_job;

typedef struct bnf_run_options {
	bnf_job job;
	bnfold_options lib;  /* what the library is asked for */
	const char *output;  /* FOLD: -o FILE for the only input, or NULL */
	const char *out_dir; /* FOLD: -O DIR, or NULL */
	bool in_place;       /* FOLD: replace each input */
	bool force;          /* FOLD: replace an existing derived output, or write to a terminal */
	bool strict;         /* CHECK: every BN left counts, foldable or not (exit 3) */
	bool stats;          /* print the op types and file sizes, before and after */
	bool headings;       /* LIST: "FILE:" above each table (several inputs) */
	bool report;         /* collect the JSON report */
} bnf_run_options;

/* What a run over several inputs has done so far. */
typedef struct bnf_run {
	size_t files, failed;
	size_t verify_failed;      /* inputs not written because a fusion failed its check */
	size_t tables;             /* LIST: tables printed */
	size_t bn_found, folded;   /* FOLD: folded; CHECK/LIST: would fold */
	size_t files_foldable;     /* CHECK/LIST: inputs with a BN that would fold */
	cli_report *report;        /* the report's document, made at the first input */
	size_t bn_left;            /* BatchNormalization nodes left (skipped), all inputs */
	size_t own_outputs;        /* FOLD: inputs skipped as bnfold's own outputs */
	bool report_failed;        /* out of memory while collecting */
} bnf_run;

/* The path the folded model of input goes to: -o, DIR/<base name of
 * input> for -O, input itself for --in-place, "-" when input is "-", else
 * input with a trailing ".onnx" replaced by ".folded.onnx".  malloc'd, NULL
 * when memory runs out. */
char *bnf_run_output_path(const bnf_run_options *o, const char *input);

/* True when path is named as bnfold names an output beside its input:
 * NAME.folded.onnx. */
bool bnf_run_is_output_name(const char *path);

/* -1 after an error naming dir unless it is a directory: a missing one is
 * created (one level, as mkdir(1) does; its parent must exist). */
int bnf_run_check_dir(const char *dir);

/* Do the job for one input and print its lines (errors, summary, the
 * table or the foldable list, by display level).  Returns 0, or -1 after
 * an error naming the file; nothing is written for it then.  An input
 * named NAME.folded.onnx whose output would be derived from its name
 * (no -o, no --in-place) is skipped with a note (0). */
int bnf_run_file(bnf_run *run, const bnf_run_options *o, const char *input);

/* One line of totals on stderr after several inputs. */
void bnf_run_totals(const bnf_run *run, const bnf_run_options *o);

/* Write the report to path ("-" = stdout): one JSON document with an
 * entry for every input, failed ones included.  -1 after an error. */
int bnf_run_write_report(bnf_run *run, const bnf_run_options *o, const char *path);

void bnf_run_free(bnf_run *run);

#endif
