/*
 * crypt: the system's crypt_r(3) (libxcrypt, or glibc's older libcrypt) run on
 * this addon's own low-priority threads, so that a password check never holds
 * the event loop, and under load takes little CPU from established sessions.
 * proftpd calls crypt(3) itself (mod_auth_unix.c pr_auth_unix_chkpass via
 * auth_unix_chkpass, mod_auth_file.c authfile_chkpass); the same code, off the
 * loop here.
 *
 * Exposes crypt(key, setting) -> Promise<string | null>: the hash, or null
 * where crypt_r fails (NULL, or libxcrypt's `*0`/`*1` failure tokens). The
 * caller compares the hash in constant time (host/auth/password-check.ts).
 *
 * Why threads of its own, at nice +10, and not libuv's thread pool: a login
 * under load should delay only itself (issue 15). proftpd gets that by
 * forking: each session, and so the crypt(3) of each login, runs in a process
 * of its own, which the kernel schedules as one more process beside the
 * established sessions. Here a check is 1.7 ms of CPU on a thread beside the
 * ones serving sessions: on a 2-core machine, while one client logged in as
 * fast as it could, 8 sessions kept 0.63-0.75x of their NOOP throughput with
 * the checks in libuv's pool at nice 0, and 0.78x with the checking thread at
 * nice 19 (a trial). A thread at nice +10 has about a tenth of a nice-0
 * thread's weight: under contention the checks get about a tenth of the share
 * of a session's thread, on an idle machine they run at full speed.
 *
 * SCHED_IDLE was tried and measured: a session's thread that wakes preempts
 * an idle-policy check at once, and the 8 sessions kept 0.88x. But a thread
 * under SCHED_IDLE gets almost nothing while the cores are busy, and a
 * process cannot take it back to a normal policy without CAP_SYS_NICE: with
 * 8 busy loops on 2 cores a check took seconds, and a process holding such
 * threads took 0.5-3 s to die after SIGKILL (30-110 ms at nice +10), since
 * each thread must run to exit. A worker that dies must end its sessions with
 * 421 at once, so the threads stay at nice +10.
 *
 * A shorter EEVDF slice for these threads was tried too (sched_setattr with
 * sched_runtime 100 us, which Linux 6.6 and later honour for SCHED_OTHER),
 * so that a waking session's thread would preempt a check sooner: the 8
 * sessions kept 0.76-0.77x, against 0.80-0.83x with the default slice in the
 * same paired runs, so the default stays.
 *
 * On Linux the nice value belongs to a thread (setpriority on its thread id),
 * and a process may always raise its own, so this needs no privilege; if it
 * fails the thread stays at nice 0 and checks run anyway. libuv's pool cannot
 * be reniced for this: its threads also do the daemon's file I/O for
 * transfers.
 *
 * Why dlopen and not -lcrypt: linking needs libcrypt's development files
 * (crypt.h, libcrypt.so), and one missing target fails node-gyp for every
 * addon of binding.gyp, so peercred and the watchdog would go too. The
 * runtime library (libcrypt.so.1) is on every glibc system; without it, loading
 * this addon throws and the host checks passwords in worker threads instead.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <node_api.h>

/* sizeof(struct crypt_data): 32768 in libxcrypt, 131232 in glibc's libcrypt
 * (before 2.39 moved it out). One size that holds either; calloc maps it
 * lazily, zeroed, as crypt_r wants (`initialized = 0`). */
#define CRYPT_DATA_SIZE (256 * 1024)

/* Two threads: with one, a hash of many rounds (the stored setting chooses
 * them, up to 999999999 for $5$/$6$: minutes) would hold every later login
 * behind it; with two, one such hash leaves the other thread to everyone
 * else. More would not make logins faster under load, which is when it
 * matters: at nice +10 they mostly wait for the sessions' threads anyway. */
#define CRYPT_THREADS 2

/* The threads' nice value (see the header). */
#define CRYPT_NICE 10

typedef char *(*crypt_r_fn)(const char *key, const char *setting, void *data);

static crypt_r_fn crypt_r_impl;
static char crypt_r_error[256];

struct request {
  struct request *next; /* in the pool's queue */
  napi_deferred deferred;
  char *key;
  char *setting;
  char *hash; /* NULL when crypt_r failed */
  int out_of_memory;
};

/*
 * One pool per Node-API environment (the main thread, each worker_threads
 * Worker that loads the addon), made on its first check, reached through
 * napi_get_instance_data. Per environment rather than one for the process,
 * because then a pool's threads answer to a single environment, whose teardown
 * joins them before its threadsafe function goes: no answer can be routed to
 * an environment already gone, with no per-request bookkeeping to get wrong.
 * In dsod each session worker is a process of its own, so it is still one
 * pool per process there.
 */
struct pool {
  napi_env env;
  napi_threadsafe_function tsfn; /* delivers answers to the JS thread */
  size_t pending;                /* checks not yet settled; JS thread only */
  pthread_mutex_t mutex;         /* guards queue and stopping */
  pthread_cond_t wake;
  struct request *head, *tail;
  int stopping;
  pthread_t threads[CRYPT_THREADS];
  int started;
};

#define CHECK_NAPI(env, call)                                          \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error((env), NULL, "crypt: N-API call failed: " #call); \
      return NULL;                                                     \
    }                                                                  \
  } while (0)

/* explicit_bzero where the C library has it (glibc 2.25+); elsewhere (macOS,
 * where this addon only compiles, then fails to load) a store the compiler
 * cannot drop, so that binding.gyp builds on every platform. */
static void wipe(void *area, size_t size) {
#if defined(__GLIBC__)
  explicit_bzero(area, size);
#else
  volatile unsigned char *p = area;
  while (size-- > 0) *p++ = 0;
#endif
}

/* On a pool thread: no Node-API here. */
static void run_check(struct request *req) {
  void *area = calloc(1, CRYPT_DATA_SIZE);
  const char *out;
  if (area == NULL) {
    req->out_of_memory = 1;
    return;
  }
  out = crypt_r_impl(req->key, req->setting, area);
  /* libxcrypt fails with a string starting with `*` (never a valid hash). */
  if (out != NULL && out[0] != '*') {
    req->hash = strdup(out);
    if (req->hash == NULL) req->out_of_memory = 1;
  }
  /* The area holds the key's derived state: cleared before it is freed. */
  wipe(area, CRYPT_DATA_SIZE);
  free(area);
}

static void free_request(struct request *req) {
  if (req->key != NULL) {
    wipe(req->key, strlen(req->key));
    free(req->key);
  }
  free(req->setting);
  free(req->hash);
  free(req);
}

/* A pool thread: its name and nice value once, then checks until the pool stops. */
static void *pool_thread(void *arg) {
  struct pool *pool = arg;
#if defined(__linux__)
  pthread_setname_np(pthread_self(), "dso-crypt");
  /* Not fatal: at nice 0 the checks still run, only with a normal share. */
  setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid), CRYPT_NICE);
#endif
  for (;;) {
    struct request *req;
    pthread_mutex_lock(&pool->mutex);
    while (pool->head == NULL && !pool->stopping) pthread_cond_wait(&pool->wake, &pool->mutex);
    if (pool->stopping) {
      pthread_mutex_unlock(&pool->mutex);
      return NULL;
    }
    req = pool->head;
    pool->head = req->next;
    if (pool->head == NULL) pool->tail = NULL;
    pthread_mutex_unlock(&pool->mutex);
    run_check(req);
    /* Fails only once the environment is closing: no one is left to answer. */
    if (napi_call_threadsafe_function(pool->tsfn, req, napi_tsfn_nonblocking) != napi_ok) free_request(req);
  }
}

/* Back on the JS thread: settle the promise. With env NULL, the threadsafe
 * function is being torn down with this answer still queued: free it only. */
static void settle(napi_env env, napi_value js_callback, void *context, void *data) {
  struct pool *pool = context;
  struct request *req = data;
  napi_value value;
  (void) js_callback;
  if (env == NULL) {
    free_request(req);
    return;
  }
  if (req->out_of_memory) {
    napi_value message;
    napi_create_string_utf8(env, "crypt: out of memory", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &value);
    napi_reject_deferred(env, req->deferred, value);
  } else {
    if (req->hash == NULL) {
      napi_get_null(env, &value);
    } else {
      napi_create_string_utf8(env, req->hash, NAPI_AUTO_LENGTH, &value);
    }
    napi_resolve_deferred(env, req->deferred, value);
  }
  free_request(req);
  /* The last pending check settled: the threads no longer keep the loop alive. */
  if (--pool->pending == 0) napi_unref_threadsafe_function(env, pool->tsfn);
}

/* Stops the threads and frees what is still queued, unanswered (the
 * environment is going: no JS runs any more). */
static void stop_threads(struct pool *pool) {
  int i;
  pthread_mutex_lock(&pool->mutex);
  pool->stopping = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  for (i = 0; i < pool->started; i++) pthread_join(pool->threads[i], NULL);
  pool->started = 0;
  while (pool->head != NULL) {
    struct request *req = pool->head;
    pool->head = req->next;
    free_request(req);
  }
  pool->tail = NULL;
}

/* The threadsafe function is gone (its queue, if any, freed through settle):
 * nothing refers to the pool any more. */
static void free_pool(napi_env env, void *data, void *hint) {
  struct pool *pool = data;
  (void) env;
  (void) hint;
  pthread_cond_destroy(&pool->wake);
  pthread_mutex_destroy(&pool->mutex);
  free(pool);
}

/*
 * The environment's teardown (process exit, worker termination). Registered
 * after the threadsafe function, so it runs before Node's own hook for it
 * (the most recent hook runs first), and in any case before Node closes any
 * handle: the function is still allocated while the threads finish (a check
 * in progress ends first; an answer they post now is freed by settle). Then
 * the function is released for good, and free_pool frees the rest.
 */
static void teardown(void *arg) {
  struct pool *pool = arg;
  stop_threads(pool);
  napi_set_instance_data(pool->env, NULL, NULL, NULL);
  napi_release_threadsafe_function(pool->tsfn, napi_tsfn_abort);
}

/* Starts up to CRYPT_THREADS threads; at least one, else returns 0. Signals
 * are blocked in them, as in Node's own helper threads: a signal (SIGINT,
 * SIGCHLD...) must be handled on the threads Node expects (as watchdog.cc). */
static int start_threads(struct pool *pool) {
  sigset_t all, saved;
  sigfillset(&all);
  if (pthread_sigmask(SIG_SETMASK, &all, &saved) != 0) return 0;
  while (pool->started < CRYPT_THREADS &&
         pthread_create(&pool->threads[pool->started], NULL, pool_thread, pool) == 0) {
    pool->started++;
  }
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  return pool->started > 0;
}

/* This environment's pool, made on its first check; NULL (no exception) if it
 * cannot be. */
static struct pool *env_pool(napi_env env) {
  struct pool *pool = NULL;
  napi_value name;
  if (napi_get_instance_data(env, (void **) &pool) != napi_ok) return NULL;
  if (pool != NULL) return pool;
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL) return NULL;
  pool->env = env;
  if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
    free(pool);
    return NULL;
  }
  if (pthread_cond_init(&pool->wake, NULL) != 0) {
    pthread_mutex_destroy(&pool->mutex);
    free(pool);
    return NULL;
  }
  /* Unref'd from the start: idle, the pool never keeps the process alive
   * (crypt_async refs it while checks are pending). From here on free_pool
   * frees the pool, once the function is released. */
  if (napi_create_string_utf8(env, "crypt", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, pool, free_pool, pool, settle, &pool->tsfn) !=
          napi_ok) {
    free_pool(env, pool, NULL);
    return NULL;
  }
  if (napi_unref_threadsafe_function(env, pool->tsfn) != napi_ok || !start_threads(pool) ||
      napi_add_env_cleanup_hook(env, teardown, pool) != napi_ok) {
    stop_threads(pool);
    napi_release_threadsafe_function(pool->tsfn, napi_tsfn_abort);
    return NULL;
  }
  if (napi_set_instance_data(env, pool, NULL, NULL) != napi_ok) {
    napi_remove_env_cleanup_hook(env, teardown, pool);
    teardown(pool);
    return NULL;
  }
  return pool;
}

/* A JS string as a malloc'd UTF-8 C string (NULL and an exception on failure). */
static char *utf8_arg(napi_env env, napi_value value, const char *what) {
  napi_valuetype type;
  size_t length;
  char *text;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) {
    char message[64];
    snprintf(message, sizeof(message), "crypt: %s must be a string", what);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  text = malloc(length + 1);
  if (text == NULL) {
    napi_throw_error(env, NULL, "crypt: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  return text;
}

static napi_value crypt_async(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value promise;
  struct pool *pool;
  struct request *req;

  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "crypt: key and setting required");
    return NULL;
  }
  req = calloc(1, sizeof(*req));
  if (req == NULL) {
    napi_throw_error(env, NULL, "crypt: out of memory");
    return NULL;
  }
  req->key = utf8_arg(env, argv[0], "key");
  req->setting = req->key == NULL ? NULL : utf8_arg(env, argv[1], "setting");
  if (req->setting == NULL) {
    free_request(req);
    return NULL;
  }
  pool = env_pool(env);
  if (pool == NULL || napi_create_promise(env, &req->deferred, &promise) != napi_ok) {
    free_request(req);
    napi_throw_error(env, NULL, "crypt: cannot queue the work");
    return NULL;
  }
  /* The first pending check: the loop stays alive until its answer. */
  if (pool->pending++ == 0) napi_ref_threadsafe_function(env, pool->tsfn);
  pthread_mutex_lock(&pool->mutex);
  if (pool->tail == NULL) pool->head = req;
  else pool->tail->next = req;
  pool->tail = req;
  pthread_cond_signal(&pool->wake);
  pthread_mutex_unlock(&pool->mutex);
  return promise;
}

/* The library, once per process: libxcrypt's soname, then glibc's older one. */
static int load_crypt_r(void) {
  static const char *const names[] = {"libcrypt.so.1", "libcrypt.so.2", "libcrypt.so"};
  size_t i;
  if (crypt_r_impl != NULL) return 1;
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      snprintf(crypt_r_error, sizeof(crypt_r_error), "crypt: %s", dlerror());
      continue;
    }
    crypt_r_impl = (crypt_r_fn) dlsym(lib, "crypt_r");
    if (crypt_r_impl != NULL) return 1;
    snprintf(crypt_r_error, sizeof(crypt_r_error), "crypt: %s has no crypt_r", names[i]);
    dlclose(lib);
  }
  return 0;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (!load_crypt_r()) {
    napi_throw_error(env, NULL, crypt_r_error);
    return NULL;
  }
  CHECK_NAPI(env, napi_create_function(env, "crypt", NAPI_AUTO_LENGTH, crypt_async, NULL, &fn));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "crypt", fn));
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
