/*
 * crypt: the system's crypt_r(3) (libxcrypt, or glibc's older libcrypt) run in
 * libuv's thread pool, so that a password check never holds the event loop.
 * proftpd calls crypt(3) itself (mod_auth_unix.c pr_auth_unix_chkpass via
 * auth_unix_chkpass, mod_auth_file.c authfile_chkpass); the same code, off the
 * loop here.
 *
 * Exposes crypt(key, setting) -> Promise<string | null>: the hash, or null
 * where crypt_r fails (NULL, or libxcrypt's `*0`/`*1` failure tokens). The
 * caller compares the hash in constant time (host/auth/password-check.ts).
 *
 * Why dlopen and not -lcrypt: linking needs libcrypt's development files
 * (crypt.h, libcrypt.so), and one missing target fails node-gyp for every
 * addon of binding.gyp, so peercred and the watchdog would go too. The
 * runtime library (libcrypt.so.1) is on every glibc system; without it, loading
 * this addon throws and the host checks passwords in worker threads instead.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

/* sizeof(struct crypt_data): 32768 in libxcrypt, 131232 in glibc's libcrypt
 * (before 2.39 moved it out). One size that holds either; calloc maps it
 * lazily, zeroed, as crypt_r wants (`initialized = 0`). */
#define CRYPT_DATA_SIZE (256 * 1024)

typedef char *(*crypt_r_fn)(const char *key, const char *setting, void *data);

static crypt_r_fn crypt_r_impl;
static char crypt_r_error[256];

struct request {
  napi_async_work work;
  napi_deferred deferred;
  char *key;
  char *setting;
  char *hash; /* NULL when crypt_r failed */
  int out_of_memory;
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

/* libuv's pool: no Node-API here. */
static void execute(napi_env env, void *data) {
  struct request *req = data;
  void *area = calloc(1, CRYPT_DATA_SIZE);
  const char *out;
  (void) env;
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

/* Back on the loop: settle the promise. */
static void complete(napi_env env, napi_status status, void *data) {
  struct request *req = data;
  napi_value value;
  if (status != napi_ok || req->out_of_memory) {
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
  napi_delete_async_work(env, req->work);
  free_request(req);
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
  napi_value name;
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
  if (napi_create_promise(env, &req->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "crypt", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, req, &req->work) != napi_ok) {
    free_request(req);
    napi_throw_error(env, NULL, "crypt: cannot queue the work");
    return NULL;
  }
  if (napi_queue_async_work(env, req->work) != napi_ok) {
    napi_delete_async_work(env, req->work);
    free_request(req);
    napi_throw_error(env, NULL, "crypt: cannot queue the work");
    return NULL;
  }
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
