/* libFuzzer target over what the command line does with one file
 * (bnf_run_file): the bytes are written to IN.onnx in a private folder and
 * folded to OUT.onnx with a report, through the streaming reader (payloads
 * left in the file, pread) or the in-memory one, with or without
 * --fold-overridable and verification, as the last byte says.  It reaches
 * what fuzz_fold does not: the streaming scan, external data relative to
 * the model's folder, and the writer with computed payloads.
 *
 * It checks that a run that succeeds wrote a model bnfold reads back, that
 * a run that fails wrote nothing, and that no temp file is ever left. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli_run.h"
#include "messages.h"
#include "model_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], in_path[96], out_path[96];

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_run: invariant broken: %s\n", what);
	abort();
}

/* Empty the folder (external data files the model named may be there). */
static void clean_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[400];
	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
}

static void remove_dir(void)
{
	clean_dir();
	rmdir(dir);
}

/* A folder in memory when there is one (/dev/shm), removed at exit. */
static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/bnfold-fuzz-XXXXXX", base);
	if (!mkdtemp(dir))
		fail("cannot make a folder to work in");
	snprintf(in_path, sizeof(in_path), "%s/in.onnx", dir);
	snprintf(out_path, sizeof(out_path), "%s/out.onnx", dir);
	atexit(remove_dir);
}

static bool debris_left(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	if (!d)
		return false;
	while ((e = readdir(d)))
		found = found || strstr(e->d_name, ".bnfold-") != NULL;
	closedir(d);
	return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags = size ? data[size - 1] : 0;
	bnf_run_options o = {.job = BNF_JOB_FOLD, .report = true};
	bnf_run run = {0};
	bnf_input back;
	struct stat st;
	int fd, rc;

	if (!dir[0])
		setup();
	cli_display_level = 0;
	bnfold_options_init(&o.lib);
	clean_dir();
	if ((fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
	    (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		fail("cannot write the input file");
	o.output = out_path;
	o.lib.fold_overridable = flags & 1;
	o.lib.stream = !(flags & 2);
	o.lib.verify = !(flags & 4);

	rc = bnf_run_file(&run, &o, in_path);
	if (debris_left())
		fail("a temp file was left");
	if (rc < 0 || run.verify_failed) {
		if (stat(out_path, &st) == 0)
			fail("a run that failed wrote the output");
	} else {
		if (bnf_input_open(out_path, &back, false, NULL) < 0)
			fail("bnfold wrote a model it cannot read back");
		bnf_input_close(&back);
		if (run.report) {
			char *text = cli_report_text(run.report);
			cJSON *j = text ? cJSON_Parse(text) : NULL;
			if (text && !j)
				fail("the report is not JSON");
			cJSON_Delete(j);
			free(text);
		}
	}
	bnf_run_free(&run);
	return 0;
}
