/* The program's signal handling, kept out of the library (which installs
 * no handler and keeps no mutable state): the temp files being written
 * are removed when SIGINT, SIGTERM or SIGHUP ends the program, and a SIGBUS
 * from a mapped input that shrank while being read ends it with one error
 * line naming the model, exit status 1. */
#ifndef BNF_SIGNALS_H
#define BNF_SIGNALS_H

#include <stdbool.h>

/* A temp file at path is being written (exists true), or is renamed or
 * removed (exists false): bnfold_options.tempfile (ctx is unused).  Up to
 * four are kept at once, all removed when a signal ends the program.  On
 * the first, also installs the handlers for SIGINT, SIGTERM and SIGHUP,
 * except for a signal the program was started ignoring (nohup, background
 * jobs): that choice stands.  A path too long to keep, or a fifth, is not
 * tracked. */
void bnf_signals_tempfile(const char *path, bool exists, void *ctx);

/* The model at model_path is read through mappings from now on: a SIGBUS
 * prints "bnfold: error: MODEL: a file it reads from shrank while being
 * read", removes the temp files and exits 1.  Installs that handler. */
void bnf_signals_reading(const char *model_path);

#endif
