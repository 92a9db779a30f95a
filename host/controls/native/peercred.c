/*
 * peercred: the one thing Node cannot do for the controls socket, reading the
 * kernel's record of who is on the other end of an AF_UNIX connection.
 * proftpd does the same in src/ctrls.c (ctrls_get_creds_peercred, called from
 * pr_ctrls_accept); libuv has no API for it (libuv issue #2255).
 *
 * Exposes getPeerCred(fd) -> { pid, uid, gid }, throwing on failure so that
 * the caller denies: an unknown identity must never fall through to "allowed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <node_api.h>

#define CHECK_NAPI(env, call)                                           \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error((env), NULL, "peercred: N-API call failed: " #call); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static napi_value set_number(napi_env env, napi_value obj, const char *key,
    double value) {
  napi_value num;
  CHECK_NAPI(env, napi_create_double(env, value, &num));
  CHECK_NAPI(env, napi_set_named_property(env, obj, key, num));
  return obj;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value get_peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type;
  int32_t fd;
  double pid, uid, gid;

  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "getPeerCred: fd argument required");
    return NULL;
  }
  CHECK_NAPI(env, napi_typeof(env, argv[0], &type));
  if (type != napi_number) {
    napi_throw_type_error(env, NULL, "getPeerCred: fd must be a number");
    return NULL;
  }
  CHECK_NAPI(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd < 0) {
    return throw_errno(env, "getPeerCred", EBADF);
  }

  /* Only an AF_UNIX peer has kernel credentials: on Linux, SO_PEERCRED on a
   * TCP socket "succeeds" with pid 0 and uid/gid (uid_t) -1, an identity that
   * every `deny user ...` rule would let through. */
  {
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *) &addr, &addr_len) != 0) {
      return throw_errno(env, "getsockname", errno);
    }
    if (addr.ss_family != AF_UNIX) {
      napi_throw_error(env, NULL, "getPeerCred: not an AF_UNIX socket");
      return NULL;
    }
  }

#if defined(SO_PEERCRED)
  {
    /* Linux: the credentials the peer had when it called connect(2). */
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
    }
    if (len != sizeof(cred)) {
      return throw_errno(env, "getsockopt(SO_PEERCRED)", EPROTO);
    }
    pid = (double) cred.pid;
    uid = (double) cred.uid;
    gid = (double) cred.gid;
  }
#else
  {
    /* BSD and macOS: proftpd's next choice (ctrls_get_creds_peereid). The
     * kernel does not report the pid there, so it is -1 ("unknown"). */
    uid_t peer_uid;
    gid_t peer_gid;
    if (getpeereid(fd, &peer_uid, &peer_gid) != 0) {
      return throw_errno(env, "getpeereid", errno);
    }
    pid = -1;
    uid = (double) peer_uid;
    gid = (double) peer_gid;
  }
#endif

  napi_value result;
  CHECK_NAPI(env, napi_create_object(env, &result));
  if (set_number(env, result, "pid", pid) == NULL ||
      set_number(env, result, "uid", uid) == NULL ||
      set_number(env, result, "gid", gid) == NULL) {
    return NULL;
  }
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK_NAPI(env, napi_create_function(env, "getPeerCred", NAPI_AUTO_LENGTH,
    get_peer_cred, NULL, &fn));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "getPeerCred", fn));
  return exports;
}
