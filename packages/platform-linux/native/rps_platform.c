/*
 * rps_platform: the kernel objects of the RefPerSys Linux platform, for Node.
 *
 * A deliberately small N-API addon: it creates and reads the kernel objects
 * (pipe2 self-pipe, timerfd, signalfd) and polls fds on Node's own libuv loop
 * with one uv_poll_t per fd. Everything with policy in it (which signals are
 * claimed by whom, the fd limit, error classification) lives in TypeScript.
 *
 * Errors: every failed syscall throws a JS Error whose `code` is the errno
 * name (from libuv's table, so it matches Node's own errors), with `syscall`
 * and `errno` (a positive number) set.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <semaphore.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

/* ---------------------------------------------------------------- errors */

static napi_value throw_errno(napi_env env, int err, const char* syscall) {
  char message[256];
  /* uv_err_name knows every errno Linux returns here and spells it as Node does. */
  const char* name = uv_err_name(-err);
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall, strerror(err), name);
  napi_value code, msg, error, value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  napi_create_int32(env, err, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* Argument helpers: return 0 and throw when the argument is not what is needed. */
static int arg_int(napi_env env, napi_value value, int32_t* out, const char* what) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    throw_type(env, what);
    return 0;
  }
  if (napi_get_value_int32(env, value, out) != napi_ok) {
    throw_type(env, what);
    return 0;
  }
  return 1;
}

static int arg_double(napi_env env, napi_value value, double* out, const char* what) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    throw_type(env, what);
    return 0;
  }
  if (napi_get_value_double(env, value, out) != napi_ok) {
    throw_type(env, what);
    return 0;
  }
  return 1;
}

#define ARGS(n)                    \
  size_t argc = n;                 \
  napi_value argv[n];              \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL); \
  if (argc < n) return throw_type(env, "missing arguments");

static napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

static napi_value undefined_value(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* ------------------------------------------------------------- fd basics */

/* pipe2() -> { readFd, writeFd }, both non-blocking and close-on-exec. */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return throw_errno(env, errno, "pipe2");
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "readFd", int_value(env, fds[0]));
  napi_set_named_property(env, result, "writeFd", int_value(env, fds[1]));
  return result;
}

/*
 * One-byte write. A write of one byte to a pipe is atomic (below PIPE_BUF),
 * so any thread may send without a lock; EINTR is retried, EAGAIN (the pipe is
 * full because nobody reads) is reported rather than blocking the caller.
 */
static napi_value js_send_byte(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, byte;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (!arg_int(env, argv[1], &byte, "byte must be a number")) return NULL;
  unsigned char b = (unsigned char)byte;
  ssize_t n;
  do n = write(fd, &b, 1); while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "write");
  return undefined_value(env);
}

/*
 * Reads what is there, up to `max` bytes: a Buffer (empty when the fd would
 * block), or null at end of file, so the caller can stop polling instead of
 * spinning on a readable-at-EOF fd.
 */
static napi_value js_read_bytes(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, max;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (!arg_int(env, argv[1], &max, "max must be a number")) return NULL;
  if (max <= 0) max = 1;
  unsigned char* buffer = malloc((size_t)max);
  if (buffer == NULL) return throw_errno(env, ENOMEM, "malloc");
  ssize_t n;
  do n = read(fd, buffer, (size_t)max); while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) {
    int err = errno;
    free(buffer);
    return throw_errno(env, err, "read");
  }
  napi_value result;
  if (n == 0) {
    napi_get_null(env, &result);
  } else {
    size_t length = n < 0 ? 0 : (size_t)n;
    napi_create_buffer_copy(env, length, buffer, NULL, &result);
  }
  free(buffer);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  /* Linux always frees the fd, even when close reports EINTR: never retry. */
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return undefined_value(env);
}

/* Whether fd is a regular file or directory: those cannot be polled, and saying so beats EPERM. */
static napi_value js_fd_kind(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) return throw_errno(env, errno, "fstat");
  const char* kind = S_ISREG(st.st_mode) ? "file"
    : S_ISDIR(st.st_mode) ? "directory"
    : S_ISFIFO(st.st_mode) ? "fifo"
    : S_ISSOCK(st.st_mode) ? "socket"
    : S_ISCHR(st.st_mode) ? "character"
    : S_ISBLK(st.st_mode) ? "block"
    : "other";
  napi_value v;
  napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &v);
  return v;
}

/* ----------------------------------------------------------------- timer */

/* timerfd_create(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC) -> fd. */
static napi_value js_timer_create(napi_env env, napi_callback_info info) {
  ARGS(1);
  bool realtime = false;
  if (napi_get_value_bool(env, argv[0], &realtime) != napi_ok) return throw_type(env, "realtime must be a boolean");
  int fd = timerfd_create(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "timerfd_create");
  return int_value(env, fd);
}

/*
 * The longest delay one arming takes, in ms: 2^31-1, about 24.8 days (the
 * limit of setTimeout too). A later deadline is reached by a chain of
 * armings: the JS side re-arms on each expiry until its Clock says the
 * deadline is due. The bound also keeps every conversion below in range:
 * 2^31-1 ms is about 2.1e15 ns, far from INT64_MAX.
 */
#define MAX_DELAY_MS 2147483647.0

/* The latest absolute time timerSet takes, in ms on the timer's clock (about 31,700 years). */
#define MAX_ABSOLUTE_MS 1e15

/*
 * `ms` as a timespec, clamped to [1 ns, max_ms]. Non-positive values (a
 * past deadline, however far: -1e300 included) become one nanosecond,
 * because an all-zero it_value would disarm the timer instead of firing it.
 * Returns 0, or EINVAL for NaN (no deadline to clamp to). Seconds and
 * nanoseconds are split in floating point from a value already clamped, so
 * no double-to-integer conversion is out of range (C leaves that undefined)
 * and no product can overflow.
 */
static int ms_to_timespec(double ms, double max_ms, struct timespec* out) {
  if (ms != ms) return EINVAL;
  if (ms > max_ms) ms = max_ms;
  if (!(ms > 0.0)) {
    out->tv_sec = 0;
    out->tv_nsec = 1;
    return 0;
  }
  double sec = floor(ms / 1000.0);
  double nsec = floor((ms - sec * 1000.0) * 1e6);
  if (nsec < 0.0) nsec = 0.0;
  if (nsec > 999999999.0) nsec = 999999999.0;
  out->tv_sec = (time_t)sec;
  out->tv_nsec = (long)nsec;
  if (out->tv_sec == 0 && out->tv_nsec == 0) out->tv_nsec = 1;
  return 0;
}

/*
 * timerSet(fd, value, intervalMs, absolute). `value` is an absolute time on
 * the timer's clock in ms (absolute) or a delay in ms; a due one fires at
 * once (one nanosecond: all-zero would disarm). Delays and intervals are
 * clamped to MAX_DELAY_MS, absolute times to MAX_ABSOLUTE_MS; an interval of
 * 0 or less means one shot. NaN is EINVAL.
 */
static napi_value js_timer_set(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t fd;
  double value, interval;
  bool absolute = false;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (!arg_double(env, argv[1], &value, "value must be a number")) return NULL;
  if (!arg_double(env, argv[2], &interval, "interval must be a number")) return NULL;
  if (napi_get_value_bool(env, argv[3], &absolute) != napi_ok) return throw_type(env, "absolute must be a boolean");
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  if (ms_to_timespec(value, absolute ? MAX_ABSOLUTE_MS : MAX_DELAY_MS, &spec.it_value) != 0) {
    return throw_errno(env, EINVAL, "timerfd_settime");
  }
  if (interval != interval) return throw_errno(env, EINVAL, "timerfd_settime");
  if (interval > 0.0) (void)ms_to_timespec(interval, MAX_DELAY_MS, &spec.it_interval);
  if (timerfd_settime(fd, absolute ? TFD_TIMER_ABSTIME : 0, &spec, NULL) != 0) {
    return throw_errno(env, errno, "timerfd_settime");
  }
  return undefined_value(env);
}

/*
 * timerSetDelay(fd, delayMs, maxDelayMs): arms the timer (one shot) to expire
 * `delayMs` from now on its own clock (CLOCK_MONOTONIC for the platform's
 * timer, so a step of the wall clock neither fires it early nor holds it
 * back, as with setTimeout). The delay is clamped to [1 ns, maxDelayMs], and
 * maxDelayMs to [1, MAX_DELAY_MS]: a delay already due (-1e300 included)
 * fires at once, and a longer one expires after maxDelayMs, when the JS side,
 * which looks at its Clock on every expiry, arms the rest. NaN is EINVAL.
 */
static napi_value js_timer_set_delay(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd;
  double delay_ms, max_ms;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (!arg_double(env, argv[1], &delay_ms, "delay must be a number")) return NULL;
  if (!arg_double(env, argv[2], &max_ms, "maxDelay must be a number")) return NULL;
  if (max_ms != max_ms) return throw_errno(env, EINVAL, "timerfd_settime");
  if (max_ms < 1.0) max_ms = 1.0;
  if (max_ms > MAX_DELAY_MS) max_ms = MAX_DELAY_MS;
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  if (ms_to_timespec(delay_ms, max_ms, &spec.it_value) != 0) return throw_errno(env, EINVAL, "timerfd_settime");
  if (timerfd_settime(fd, 0, &spec, NULL) != 0) return throw_errno(env, errno, "timerfd_settime");
  return undefined_value(env);
}

/* timerGet(fd): ms until the next expiry (timerfd_gettime), 0 when disarmed. */
static napi_value js_timer_get(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  struct itimerspec spec;
  if (timerfd_gettime(fd, &spec) != 0) return throw_errno(env, errno, "timerfd_gettime");
  double ms = (double)spec.it_value.tv_sec * 1000.0 + (double)spec.it_value.tv_nsec / 1e6;
  napi_value v;
  if (napi_create_double(env, ms, &v) != napi_ok) return throw_errno(env, ENOMEM, "napi_create_double");
  return v;
}

/* Disarming also discards expirations not yet read: the kernel resets the count. */
static napi_value js_timer_disarm(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  if (timerfd_settime(fd, 0, &spec, NULL) != 0) return throw_errno(env, errno, "timerfd_settime");
  return undefined_value(env);
}

/* Expirations since the last read (0 when none): ticks are counted, never lost. */
static napi_value js_timer_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  uint64_t count = 0;
  ssize_t n;
  do n = read(fd, &count, sizeof count); while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return int_value(env, 0);
    return throw_errno(env, errno, "read");
  }
  napi_value v;
  napi_create_double(env, (double)count, &v);
  return v;
}

/* --------------------------------------------------------------- signals */

/*
 * Signal dispositions and the signalfd are process-wide, so this state is
 * too. Node runs many threads, and the kernel delivers a process-directed
 * signal to any thread that does not block it; for the signalfd to see it,
 * every thread must block it. A thread's mask can only be changed by that
 * thread, so a claim broadcasts the helper signal (tgkill) to every other
 * thread; its handler edits the mask the kernel restores on return from the
 * handler. Any delivery that still reaches a thread not blocking the signal
 * (a thread created meanwhile, one that blocks the helper) hits the
 * forwarding handler, which writes the signal number to the stray pipe: it
 * is counted, never fatal (and SIGUSR1 never starts the inspector). JS
 * merges the signalfd and the stray pipe.
 */
static int signal_fd = -1;
static int stray_fds[2] = { -1, -1 };
static volatile sig_atomic_t stray_write_fd = -1;
static struct sigaction previous_actions[_NSIG];
static unsigned char claimed[_NSIG];
static unsigned char we_blocked[_NSIG];
static sigset_t claimed_set;
/*
 * The environment (JS thread) that owns the signal state. Dispositions and
 * the signalfd are process-wide, so one thread reads them and keeps the
 * claim counts; a worker_thread that claimed and then ended would otherwise
 * leave signals blocked with nobody reading them.
 */
static napi_env signal_env;

/* Not claimable (the TS layer rejects SIGSTKFLT), so it never meets a claim. */
#define HELPER_SIGNAL SIGSTKFLT
/* How long a claim waits for the other threads to acknowledge a mask change. */
#define HELPER_WAIT_NS 1000000000L

/* The change being broadcast; written before the tgkill calls, read by the handler. */
static volatile sig_atomic_t helper_active;
static volatile sig_atomic_t helper_how;
static volatile sig_atomic_t helper_signo;
static sem_t helper_acks;

/* The other threads in which the addon blocked each claimed signal, so a release unblocks only those. */
static pid_t* blocked_tids[_NSIG];
static size_t blocked_count[_NSIG];

/*
 * Runs in the target thread. pthread_sigmask here would be undone when the
 * handler returns (the kernel restores the mask saved in the ucontext), so the
 * saved mask is what changes. sigaddset, sigdelset and sem_post are
 * async-signal-safe. A helper signal outside a broadcast (sent by someone
 * else, or arriving after the wait gave up) changes nothing.
 */
static void apply_mask_change(int signo, siginfo_t* si, void* context) {
  (void)signo;
  (void)si;
  int saved = errno;
  if (helper_active) {
    ucontext_t* uc = context;
    if (helper_how == SIG_BLOCK) sigaddset(&uc->uc_sigmask, helper_signo);
    else sigdelset(&uc->uc_sigmask, helper_signo);
    sem_post(&helper_acks);
  }
  errno = saved;
}

/* Whether thread `tid` blocks `signo` and the helper, from /proc (0 on success, else an errno; ENOENT: gone). */
static int thread_blocks(pid_t tid, int signo, int* blocks_signo, int* blocks_helper) {
  char path[64], text[4096];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do n = read(fd, text, sizeof text - 1); while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  close(fd);
  if (n < 0) return err;
  text[n] = 0;
  const char* line = strstr(text, "\nSigBlk:");
  /* A thread exiting between opendir and here may show an empty status: treat it as gone. */
  if (line == NULL) return ENOENT;
  unsigned long long mask = strtoull(line + 8, NULL, 16);
  *blocks_signo = (int)((mask >> (signo - 1)) & 1);
  *blocks_helper = (int)((mask >> (HELPER_SIGNAL - 1)) & 1);
  return 0;
}

/*
 * Blocks (or unblocks) `signo` in other threads. SIG_BLOCK: every thread in
 * /proc/self/task except this one that does not block it yet, recording the
 * tids in blocked_tids[signo]; SIG_UNBLOCK: the recorded tids, then forgets
 * them. Threads that exited are skipped (ESRCH, ENOENT); a thread that blocks
 * the helper cannot be reached and keeps its mask (the forwarding handler
 * covers it). Waits at most HELPER_WAIT_NS for the acknowledgements: a thread
 * that does not run in time leaves the broadcast (helper_active is cleared),
 * with the same cover. Returns 0 or an errno, *syscall naming the call.
 */
static int broadcast_mask(int how, int signo, const char** syscall_name) {
  pid_t self = (pid_t)syscall(SYS_gettid);
  pid_t pid = getpid();
  int err = 0;
  size_t sent = 0;
  while (sem_trywait(&helper_acks) == 0) {
  }
  helper_how = how;
  helper_signo = signo;
  helper_active = 1;

  if (how == SIG_BLOCK) {
    DIR* dir = opendir("/proc/self/task");
    if (dir == NULL) {
      *syscall_name = "opendir";
      err = errno;
    }
    struct dirent* entry;
    while (err == 0 && (errno = 0, entry = readdir(dir)) != NULL) {
      pid_t tid = (pid_t)atoi(entry->d_name);
      if (tid <= 0 || tid == self) continue;
      int blocks_signo = 0, blocks_helper = 0;
      int e = thread_blocks(tid, signo, &blocks_signo, &blocks_helper);
      if (e == ENOENT || e == ESRCH) continue;
      if (e != 0) {
        *syscall_name = "read";
        err = e;
        break;
      }
      if (blocks_signo || blocks_helper) continue;
      pid_t* grown = realloc(blocked_tids[signo], (blocked_count[signo] + 1) * sizeof *grown);
      if (grown == NULL) {
        *syscall_name = "realloc";
        err = ENOMEM;
        break;
      }
      blocked_tids[signo] = grown;
      if (syscall(SYS_tgkill, pid, tid, HELPER_SIGNAL) != 0) {
        if (errno == ESRCH) continue;
        *syscall_name = "tgkill";
        err = errno;
        break;
      }
      blocked_tids[signo][blocked_count[signo]++] = tid;
      sent++;
    }
    if (err == 0 && dir != NULL && errno != 0) {
      *syscall_name = "readdir";
      err = errno;
    }
    if (dir != NULL) closedir(dir);
  } else {
    for (size_t i = 0; i < blocked_count[signo]; i++) {
      if (syscall(SYS_tgkill, pid, blocked_tids[signo][i], HELPER_SIGNAL) == 0) sent++;
      else if (errno != ESRCH) {
        *syscall_name = "tgkill";
        err = errno;
        break;
      }
    }
    free(blocked_tids[signo]);
    blocked_tids[signo] = NULL;
    blocked_count[signo] = 0;
  }

  /* Wait even after an error: the threads already signalled must finish before helper_active is cleared. */
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += HELPER_WAIT_NS % 1000000000L;
  deadline.tv_sec += HELPER_WAIT_NS / 1000000000L + deadline.tv_nsec / 1000000000L;
  deadline.tv_nsec %= 1000000000L;
  for (size_t acked = 0; acked < sent;) {
    if (sem_timedwait(&helper_acks, &deadline) == 0) acked++;
    else if (errno == ETIMEDOUT) break;
    else if (errno != EINTR) {
      if (err == 0) {
        *syscall_name = "sem_timedwait";
        err = errno;
      }
      break;
    }
  }
  helper_active = 0;
  return err;
}

static void forward_signal(int signo) {
  int saved = errno;
  unsigned char byte = (unsigned char)signo;
  int fd = stray_write_fd;
  /* Async-signal-safe. A full pipe loses the byte; the pipe is made large so that needs ~1M undrained signals. */
  if (fd >= 0) (void)!write(fd, &byte, 1);
  errno = saved;
}

/* signalInit() -> { signalFd, strayFd }; idempotent. */
static napi_value js_signal_init(napi_env env, napi_callback_info info) {
  if (signal_env != NULL && signal_env != env) {
    napi_throw_error(env, "ERR_WRONG_THREAD", "signals are claimed by the thread that first claimed one (the main thread)");
    return NULL;
  }
  if (signal_fd < 0) {
    if (pipe2(stray_fds, O_CLOEXEC | O_NONBLOCK) != 0) return throw_errno(env, errno, "pipe2");
    /* Best effort: a bigger pipe only makes loss under a storm less likely. */
    (void)fcntl(stray_fds[1], F_SETPIPE_SZ, 1 << 20);
    sigemptyset(&claimed_set);
    int fd = signalfd(-1, &claimed_set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      close(stray_fds[0]);
      close(stray_fds[1]);
      stray_fds[0] = stray_fds[1] = -1;
      return throw_errno(env, err, "signalfd");
    }
    /* The helper handler stays installed for the life of the process: claims come and go, it is harmless idle. */
    struct sigaction helper;
    memset(&helper, 0, sizeof helper);
    helper.sa_sigaction = apply_mask_change;
    sigfillset(&helper.sa_mask);
    helper.sa_flags = SA_SIGINFO | SA_RESTART;
    const char* failed = NULL;
    if (sem_init(&helper_acks, 0, 0) != 0) failed = "sem_init";
    else if (sigaction(HELPER_SIGNAL, &helper, NULL) != 0) failed = "sigaction";
    if (failed != NULL) {
      int err = errno;
      close(fd);
      close(stray_fds[0]);
      close(stray_fds[1]);
      stray_fds[0] = stray_fds[1] = -1;
      return throw_errno(env, err, failed);
    }
    signal_fd = fd;
    stray_write_fd = stray_fds[1];
    signal_env = env;
  }
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "signalFd", int_value(env, signal_fd));
  napi_set_named_property(env, result, "strayFd", int_value(env, stray_fds[0]));
  return result;
}

static int check_signo(napi_env env, int32_t signo) {
  if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP) {
    char message[96];
    snprintf(message, sizeof message, "signal number %d cannot be claimed", signo);
    napi_throw_range_error(env, "ERR_INVALID_SIGNAL", message);
    return 0;
  }
  if (signal_fd < 0) {
    napi_throw_error(env, "ERR_NOT_INITIALIZED", "signalInit() must be called first");
    return 0;
  }
  if (env != signal_env) {
    napi_throw_error(env, "ERR_WRONG_THREAD", "signals are claimed by the thread that first claimed one (the main thread)");
    return 0;
  }
  return 1;
}

/* Claims one signal: forwarding handler, blocked in this thread, added to the signalfd, blocked in the other threads. */
static napi_value js_signal_claim(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t signo;
  if (!arg_int(env, argv[0], &signo, "signal must be a number")) return NULL;
  if (!check_signo(env, signo)) return NULL;
  if (claimed[signo]) return undefined_value(env);

  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = forward_signal;
  sigfillset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(signo, &action, &previous_actions[signo]) != 0) return throw_errno(env, errno, "sigaction");

  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, signo);
  int err = pthread_sigmask(SIG_BLOCK, &one, &old);
  if (err != 0) {
    sigaction(signo, &previous_actions[signo], NULL);
    return throw_errno(env, err, "pthread_sigmask");
  }
  we_blocked[signo] = !sigismember(&old, signo);

  sigaddset(&claimed_set, signo);
  if (signalfd(signal_fd, &claimed_set, 0) < 0) {
    err = errno;
    sigdelset(&claimed_set, signo);
    if (we_blocked[signo]) pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    sigaction(signo, &previous_actions[signo], NULL);
    return throw_errno(env, err, "signalfd");
  }
  const char* failed = NULL;
  err = broadcast_mask(SIG_BLOCK, signo, &failed);
  if (err != 0) {
    const char* ignored;
    (void)broadcast_mask(SIG_UNBLOCK, signo, &ignored);
    sigdelset(&claimed_set, signo);
    (void)signalfd(signal_fd, &claimed_set, 0);
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&one, NULL, &zero) == signo) {
    }
    if (we_blocked[signo]) pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    sigaction(signo, &previous_actions[signo], NULL);
    return throw_errno(env, err, failed);
  }
  claimed[signo] = 1;
  return undefined_value(env);
}

/*
 * Releases one signal. Pending instances are discarded while the signal is
 * still blocked: unblocking first would hand them to the restored
 * disposition, which for most signals is to terminate the process. The other
 * threads are unblocked while the forwarding handler is still installed, so
 * what arrives meanwhile is forwarded, not fatal.
 */
static napi_value js_signal_release(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t signo;
  if (!arg_int(env, argv[0], &signo, "signal must be a number")) return NULL;
  if (!check_signo(env, signo)) return NULL;
  if (!claimed[signo]) return undefined_value(env);

  sigdelset(&claimed_set, signo);
  if (signalfd(signal_fd, &claimed_set, 0) < 0) return throw_errno(env, errno, "signalfd");

  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  struct timespec zero = { 0, 0 };
  while (sigtimedwait(&one, NULL, &zero) == signo) {
  }
  const char* failed = NULL;
  int err = broadcast_mask(SIG_UNBLOCK, signo, &failed);
  if (err != 0) return throw_errno(env, err, failed);
  if (sigaction(signo, &previous_actions[signo], NULL) != 0) return throw_errno(env, errno, "sigaction");
  if (we_blocked[signo]) {
    err = pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    if (err != 0) return throw_errno(env, err, "pthread_sigmask");
  }
  claimed[signo] = 0;
  we_blocked[signo] = 0;
  return undefined_value(env);
}

/* Signal numbers waiting in the signalfd, oldest first (empty when none). */
static napi_value js_signal_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  struct signalfd_siginfo infos[64];
  napi_value result;
  napi_create_array(env, &result);
  uint32_t index = 0;
  for (;;) {
    ssize_t n;
    do n = read(fd, infos, sizeof infos); while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN) break;
      return throw_errno(env, errno, "read");
    }
    size_t count = (size_t)n / sizeof infos[0];
    for (size_t i = 0; i < count; i++) napi_set_element(env, result, index++, int_value(env, infos[i].ssi_signo));
    if (count < sizeof infos / sizeof infos[0]) break;
  }
  return result;
}

/* kill(getpid(), signo): Node's process.kill cannot name real-time signals. */
static napi_value js_raise(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t signo;
  if (!arg_int(env, argv[0], &signo, "signal must be a number")) return NULL;
  if (kill(getpid(), signo) != 0) return throw_errno(env, errno, "kill");
  return undefined_value(env);
}

/* ------------------------------------------------------------- readiness */

/*
 * One uv_poll_t per fd on Node's loop. The JS side starts polling when a
 * consumer wants a report and stops after it got one, so a level-triggered
 * fd nobody reads never spins the loop. Memory is freed once both libuv
 * (close callback) and JS (finalizer of the External) are done with it.
 */
typedef struct watcher_s watcher_t;

/*
 * Per-environment state (main thread or a worker). A worker's loop is closed
 * when the worker ends, and Node aborts if a handle is still open on it, so
 * an async cleanup hook closes this environment's handles and holds the
 * teardown until their close callbacks have run.
 */
typedef struct {
  watcher_t* head;
  int cleaning;
  napi_async_cleanup_hook_handle hook;
} env_state_t;

struct watcher_s {
  uv_poll_t handle;
  napi_env env;
  env_state_t* state;
  watcher_t* prev;
  watcher_t* next;
  napi_ref callback;
  napi_ref receiver;
  napi_async_context async;
  int fd;
  int closing;
  int closed;
  int js_gone;
};

enum { R_READ = 1, R_WRITE = 2, R_HUP = 4, R_ERROR = 8 };

static void watcher_closed(uv_handle_t* handle) {
  watcher_t* w = (watcher_t*)handle->data;
  env_state_t* state = w->state;
  napi_delete_reference(w->env, w->callback);
  napi_delete_reference(w->env, w->receiver);
  napi_async_destroy(w->env, w->async);
  if (w->prev != NULL) w->prev->next = w->next;
  else state->head = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  /* The duplicate was closed with uv_close (watcher_close). */
  w->closed = 1;
  if (w->js_gone) free(w);
  if (state->cleaning && state->head == NULL) {
    state->cleaning = 0;
    napi_remove_async_cleanup_hook(state->hook);
  }
}

/*
 * Closes the handle and, at once, the duplicate fd it polls. uv_close takes
 * the fd out of epoll before it returns (libuv's uv__platform_invalidate_fd:
 * EPOLL_CTL_DEL, and pending events for it are dropped), and libuv documents
 * that the fd may be closed right after uv_close. Waiting for the close
 * callback instead would keep one fd per unwatch open until the next turn
 * of the loop, and a tight watch/unwatch loop would run out of fds (EMFILE)
 * before that turn came. on_poll never runs again once `closing` is set.
 */
static void watcher_close(watcher_t* w) {
  if (w->closing) return;
  w->closing = 1;
  uv_close((uv_handle_t*)&w->handle, watcher_closed);
  /* Linux frees the fd even when close reports EINTR; nothing else can fail for an fd we own. */
  if (w->fd >= 0) (void)close(w->fd);
  w->fd = -1;
}

static void watcher_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  watcher_t* w = data;
  w->js_gone = 1;
  if (w->closed) free(w);
  else watcher_close(w);
}

static void on_poll(uv_poll_t* handle, int status, int events) {
  (void)events;
  watcher_t* w = (watcher_t*)handle->data;
  if (w->closing) return;
  int flags = 0;
  if (status < 0) {
    flags = R_ERROR;
  } else {
    /*
     * libuv folds EPOLLHUP into "readable", hiding the hang-up; a zero-timeout
     * poll(2) on the one fd gives the kernel's own view.
     */
    struct pollfd p = { .fd = w->fd, .events = POLLIN | POLLOUT | POLLRDHUP, .revents = 0 };
    int n;
    do n = poll(&p, 1, 0); while (n < 0 && errno == EINTR);
    if (n < 0) flags = R_ERROR;
    else {
      if (p.revents & POLLIN) flags |= R_READ;
      if (p.revents & POLLOUT) flags |= R_WRITE;
      if (p.revents & (POLLHUP | POLLRDHUP)) flags |= R_HUP;
      if (p.revents & (POLLERR | POLLNVAL)) flags |= R_ERROR;
    }
  }
  if (flags == 0) return;

  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, argv[2], result;
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_reference_value(env, w->receiver, &receiver);
  napi_create_int32(env, flags, &argv[0]);
  napi_create_int32(env, status, &argv[1]);
  /* make_callback (not call_function) so microtasks and nextTicks run afterwards, as for Node's own I/O. */
  napi_status s = napi_make_callback(env, w->async, receiver, callback, 2, argv, &result);
  if (s == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

/* pollOpen(fd, callback(flags, status)) -> handle; fails with EBADF (fcntl) or libuv's error (EPERM...). */
static napi_value js_poll_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (!arg_int(env, argv[0], &fd, "fd must be a number")) return NULL;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type != napi_function) return throw_type(env, "callback must be a function");
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, EINVAL, "napi_get_uv_event_loop");
  watcher_t* w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, ENOMEM, "calloc");
  /*
   * The handle polls a duplicate owned here, closed with the handle. libuv
   * aborts the process when epoll_ctl meets a closed fd, and a caller may
   * close its fd while the poll is armed; the duplicate keeps the open file
   * (and the fd libuv registers) alive until the watch ends.
   */
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    int err = errno;
    free(w);
    return throw_errno(env, err, "fcntl");
  }
  int r = uv_poll_init(loop, &w->handle, own);
  if (r != 0) {
    close(own);
    free(w);
    return throw_errno(env, -r, "uv_poll_init");
  }
  w->handle.data = w;
  w->env = env;
  w->fd = own;
  napi_get_instance_data(env, (void**)&w->state);
  w->next = w->state->head;
  if (w->next != NULL) w->next->prev = w;
  w->state->head = w;
  /* Unreferenced by default: watching an fd must never keep the process alive by itself. */
  uv_unref((uv_handle_t*)&w->handle);
  napi_value receiver, name, external;
  napi_create_object(env, &receiver);
  napi_create_string_utf8(env, "rps_platform.poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, receiver, name, &w->async);
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_create_reference(env, receiver, 1, &w->receiver);
  napi_create_external(env, w, watcher_finalize, NULL, &external);
  return external;
}

static watcher_t* arg_watcher(napi_env env, napi_value value) {
  void* data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    throw_type(env, "expected a handle from pollOpen");
    return NULL;
  }
  watcher_t* w = data;
  if (w->closing) {
    throw_errno(env, EBADF, "uv_poll_start");
    return NULL;
  }
  return w;
}

/* pollStart(handle, read, write): hang-ups and errors are always reported. */
static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  ARGS(3);
  watcher_t* w = arg_watcher(env, argv[0]);
  if (w == NULL) return NULL;
  bool read = false, write = false;
  napi_get_value_bool(env, argv[1], &read);
  napi_get_value_bool(env, argv[2], &write);
  int events = UV_DISCONNECT | (read ? UV_READABLE : 0) | (write ? UV_WRITABLE : 0);
  int r = uv_poll_start(&w->handle, events, on_poll);
  if (r != 0) return throw_errno(env, -r, "uv_poll_start");
  return undefined_value(env);
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  watcher_t* w = arg_watcher(env, argv[0]);
  if (w == NULL) return NULL;
  int r = uv_poll_stop(&w->handle);
  if (r != 0) return throw_errno(env, -r, "uv_poll_stop");
  return undefined_value(env);
}

static napi_value js_poll_ref(napi_env env, napi_callback_info info) {
  ARGS(2);
  watcher_t* w = arg_watcher(env, argv[0]);
  if (w == NULL) return NULL;
  bool ref = false;
  napi_get_value_bool(env, argv[1], &ref);
  if (ref) uv_ref((uv_handle_t*)&w->handle);
  else uv_unref((uv_handle_t*)&w->handle);
  return undefined_value(env);
}

/* Closing twice is harmless, so scope finalizers need not track it. */
static napi_value js_poll_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  void* data = NULL;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    return throw_type(env, "expected a handle from pollOpen");
  }
  watcher_close((watcher_t*)data);
  return undefined_value(env);
}

/* ------------------------------------------------------------------ init */

static void env_cleanup(napi_async_cleanup_hook_handle hook, void* data) {
  env_state_t* state = data;
  state->hook = hook;
  if (state->head == NULL) {
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  state->cleaning = 1;
  for (watcher_t* w = state->head; w != NULL; w = w->next) watcher_close(w);
}

static void env_state_free(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value js_constants(napi_env env) {
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "SIGRTMIN", int_value(env, SIGRTMIN));
  napi_set_named_property(env, result, "SIGRTMAX", int_value(env, SIGRTMAX));
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
    { "pipe", NULL, js_pipe, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendByte", NULL, js_send_byte, NULL, NULL, NULL, napi_enumerable, NULL },
    { "readBytes", NULL, js_read_bytes, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fdKind", NULL, js_fd_kind, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerCreate", NULL, js_timer_create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerSet", NULL, js_timer_set, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerSetDelay", NULL, js_timer_set_delay, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerGet", NULL, js_timer_get, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerDisarm", NULL, js_timer_disarm, NULL, NULL, NULL, napi_enumerable, NULL },
    { "timerRead", NULL, js_timer_read, NULL, NULL, NULL, napi_enumerable, NULL },
    { "signalInit", NULL, js_signal_init, NULL, NULL, NULL, napi_enumerable, NULL },
    { "signalClaim", NULL, js_signal_claim, NULL, NULL, NULL, napi_enumerable, NULL },
    { "signalRelease", NULL, js_signal_release, NULL, NULL, NULL, napi_enumerable, NULL },
    { "signalRead", NULL, js_signal_read, NULL, NULL, NULL, napi_enumerable, NULL },
    { "raise", NULL, js_raise, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollOpen", NULL, js_poll_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollStart", NULL, js_poll_start, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollStop", NULL, js_poll_stop, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollRef", NULL, js_poll_ref, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollClose", NULL, js_poll_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  env_state_t* state = calloc(1, sizeof *state);
  if (state == NULL) {
    throw_errno(env, ENOMEM, "calloc");
    return NULL;
  }
  napi_set_instance_data(env, state, env_state_free, NULL);
  napi_add_async_cleanup_hook(env, env_cleanup, state, NULL);
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_set_named_property(env, exports, "constants", js_constants(env));
  return exports;
}
