/*
 * The native anchor of the load benchmark (bench/load.ts): what proftpd's
 * mod_dso pays per insmod+rmmod of a module, a dlopen/dlclose cycle.
 *
 *   dlbench LIBRARY WARMUP CYCLES
 *
 * Each cycle is dlopen(RTLD_NOW|RTLD_LOCAL), dlsym of the module struct and of
 * an entry point (mod_dso looks up NAME_module; a handler is then called),
 * one call, and dlclose. The library file is in the page cache after the
 * first cycle, as a module file is on a server that loads it again.
 *
 * Prints one JSON object on stdout:
 *   {"library": ..., "first_us": N, "samples_us": [...], "unloaded": true|false}
 * `first_us` is the very first cycle of this process (ld.so's caches cold);
 * `samples_us` are the CYCLES cycles after WARMUP more; `unloaded` says
 * RTLD_NOLOAD no longer finds the library after the last dlclose, i.e. each
 * cycle really mapped and unmapped it (a library pinned by NODELETE would
 * make the cycle a refcount bump and flatter the anchor).
 *
 * Build: cc -O2 -o dlbench dlbench.c -ldl (bench/load.ts does this).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*entry_fn)(int);

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One cycle; exits the process on failure so a broken library cannot look fast. */
static double cycle(const char *library, volatile int *sink) {
  double start = now_us();
  void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    fprintf(stderr, "dlbench: dlopen: %s\n", dlerror());
    exit(2);
  }
  const int *module = (const int *)dlsym(handle, "bench_module");
  entry_fn entry = (entry_fn)dlsym(handle, "bench_entry");
  if (module == NULL || entry == NULL) {
    fprintf(stderr, "dlbench: dlsym: %s\n", dlerror());
    exit(2);
  }
  *sink += entry(*module);
  if (dlclose(handle) != 0) {
    fprintf(stderr, "dlbench: dlclose: %s\n", dlerror());
    exit(2);
  }
  return now_us() - start;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: dlbench LIBRARY WARMUP CYCLES\n");
    return 1;
  }
  const char *library = argv[1];
  long warmup = strtol(argv[2], NULL, 10);
  long cycles = strtol(argv[3], NULL, 10);
  if (warmup < 0 || cycles <= 0) {
    fprintf(stderr, "dlbench: bad counts\n");
    return 1;
  }
  double *samples = malloc(sizeof(double) * (size_t)cycles);
  if (samples == NULL) return 1;
  volatile int sink = 0;
  double first = cycle(library, &sink);
  for (long i = 0; i < warmup; i++) cycle(library, &sink);
  for (long i = 0; i < cycles; i++) samples[i] = cycle(library, &sink);
  void *left = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  int unloaded = left == NULL;
  if (left != NULL) dlclose(left);

  printf("{\"library\":\"%s\",\"first_us\":%.3f,\"unloaded\":%s,\"sink\":%d,\"samples_us\":[", library, first,
         unloaded ? "true" : "false", sink);
  for (long i = 0; i < cycles; i++) printf(i == 0 ? "%.3f" : ",%.3f", samples[i]);
  printf("]}\n");
  free(samples);
  return 0;
}
