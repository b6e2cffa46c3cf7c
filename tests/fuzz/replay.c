/* Replays saved fuzz inputs through LLVMFuzzerTestOneInput without
 * libFuzzer: every regular file in the directories (or files) given, in
 * name order, one TAP line each.  A crash or sanitizer report fails the
 * test; so does an input that cannot be read. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_run, n_failed;

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if (f) {
		for (;;) {
			size_t r;
			if (len == cap) {
				uint8_t *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
				if (!nb)
					break;
				buf = nb;
			}
			r = fread(buf + len, 1, cap - len, f);
			len += r;
			if (r == 0)
				break;
		}
	}
	if (!f || ferror(f)) {
		printf("not ok %d - %s: cannot read\n", ++n_run, path);
		n_failed++;
	} else {
		fflush(stdout);
		LLVMFuzzerTestOneInput(buf, len);
		printf("ok %d - %s\n", ++n_run, path);
	}
	if (f)
		fclose(f);
	free(buf);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (!d) {
		printf("not ok %d - %s: cannot open the directory\n", ++n_run, dir);
		n_failed++;
		return;
	}
	while ((e = readdir(d))) {
		char **nn;
		if (e->d_name[0] == '.' || strstr(e->d_name, ".md"))
			continue;
		if (!(nn = realloc(names, (n + 1) * sizeof(*nn))))
			break;
		names = nn;
		if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2)))
			break;
		sprintf(names[n++], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			replay_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	printf("TAP version 13\n");
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else
			replay_file(argv[i]);
	}
	printf("1..%d\n", n_run);
	return n_failed ? 1 : 0;
}
