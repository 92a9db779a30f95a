// CPU watchdog for guest calls: interrupts V8 itself when a guarded call has
// used its budget of CPU time.
//
// CPU time, not wall-clock time: the budget counts only what the JS thread
// itself runs (its thread CPU clock, user and system time), so a process
// stopped by SIGSTOP, a machine busy with other processes, or garbage
// collection on V8's helper threads never uses up a guest's budget; a guest
// that spins does. A thread cannot use CPU faster than wall-clock time passes,
// so the watchdog first looks when the budget has passed in wall-clock time
// (the earliest it could be used up), reads the JS thread's CPU clock, and if
// some budget is left looks again when that much more wall-clock time has
// passed: a call that runs uninterrupted is cut at its budget, one that was
// paused gets its pause back.
//
// Why a native addon: V8 already polls for interrupts at every wasm loop
// header and function entry (the stack-guard check Liftoff and TurboFan emit
// anyway), so asking V8 to terminate costs the guest nothing per iteration,
// unlike fuel counters compiled into the guest. Node exposes that only through
// vm's `timeout`, which starts a thread per call (~50 us); Node-API has no
// TerminateExecution at all. Hence one persistent thread, and V8 itself.
//
// How V8 is reached: everything else goes through Node-API, whose ABI is
// stable, so one build loads on every Node line (20, 22, 24, 26...). V8's C++
// API is not: Node 26 removed v8::Context::GetIsolate, which the previous
// version of this file needed to compile. The four V8 functions the watchdog
// needs (Isolate::GetCurrent, TerminateExecution, CancelTerminateExecution,
// IsExecutionTerminating) have kept their names and signatures since V8 3, so
// they are looked up at load, by their Itanium-mangled names, among the
// symbols the node binary exports to addons (a non-virtual member function is
// a plain function taking `this` first). No V8 header is included: the binary
// has no compile-time V8 ABI dependency. If a symbol is missing, loading the
// addon throws and the host falls back to node:vm (host/sandbox/watchdog.ts).
//
// How a termination crosses napi_call_function: V8 unwinds fn, and the call
// returns napi_pending_exception, with the termination's placeholder (null)
// stored as the env's last exception. Left there, Node-API would throw it
// when this callback returns, as a catchable `null`; so every path that sees
// a termination takes it out (napi_get_and_clear_last_exception) and lets
// V8's own state decide: cancelled (our interrupt, at the outermost call) or
// still terminating (nested calls, worker.terminate()), in which case V8 goes
// on unwinding once this callback returns.
//
// Protocol between the JS thread (the one running the isolate) and the
// watchdog thread, all through `slot_`, one 64-bit atomic word:
//   0                    nothing guarded
//   gen << 1             call number `gen` is armed; its deadline is deadline_
//   gen << 1 | kClaimed  the watchdog claimed call `gen` and is terminating it
// Arming stores the word; disarming exchanges it for 0. The watchdog fires only
// by compare-exchanging the armed word of the very call it judged expired, so
// a call that disarmed first (or a later call reusing the slot) is never hit:
// the generation rules out ABA. When the disarm finds the word claimed, the
// termination request may be in flight or already made; the JS thread waits
// for `fired_gen_` to confirm it was made, then cancels it, so no termination
// leaks into whatever JS runs after the guarded call.
//
// Fast path (a call that ends within budget, with the watchdog already
// sleeping past the new deadline): two clock reads (the wall clock through the
// vDSO; the thread's CPU clock, a ~0.2 us syscall on Linux), a seq_cst store,
// load and exchange, and napi_call_function (~0.3 us in all, next to ~45 us
// for vm's timeout). The watchdog thread is only signalled
// (futex) when it is parked or would wake later than the new deadline, which
// is once per burst of calls, not once per call.

#include <node_api.h>

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#ifdef __APPLE__
#include <mach/mach.h>
#endif

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kClaimed = 1;
// A parked watchdog "wakes" at this time: later than any deadline.
constexpr int64_t kNever = INT64_MAX;
// Longest budget accepted: keeps now + budget far from int64 overflow.
constexpr double kMaxBudgetMs = 2147483647.0;
// How old a reading of the JS thread's CPU clock an arm may reuse (see Watchdog::Arm).
constexpr int64_t kCpuSampleNs = 1000000;

// The V8 functions the watchdog calls, resolved by V8Api::Resolve. An
// isolate is opaque here: only ever passed back to V8.
struct V8Api {
  void* (*get_current)();                // static v8::Isolate* v8::Isolate::GetCurrent()
  void (*terminate)(void* isolate);      // void v8::Isolate::TerminateExecution(), thread-safe
  void (*cancel)(void* isolate);         // void v8::Isolate::CancelTerminateExecution()
  bool (*is_terminating)(void* isolate); // bool v8::Isolate::IsExecutionTerminating()

  // Fills the table from the process's exported symbols; returns the first
  // symbol missing, or nullptr.
  const char* Resolve() {
    struct Entry {
      const char* symbol;
      const char* name;
      void** slot;
    };
    const Entry entries[] = {
        {"_ZN2v87Isolate10GetCurrentEv", "v8::Isolate::GetCurrent", reinterpret_cast<void**>(&get_current)},
        {"_ZN2v87Isolate18TerminateExecutionEv", "v8::Isolate::TerminateExecution",
         reinterpret_cast<void**>(&terminate)},
        {"_ZN2v87Isolate24CancelTerminateExecutionEv", "v8::Isolate::CancelTerminateExecution",
         reinterpret_cast<void**>(&cancel)},
        {"_ZN2v87Isolate22IsExecutionTerminatingEv", "v8::Isolate::IsExecutionTerminating",
         reinterpret_cast<void**>(&is_terminating)},
    };
    for (const Entry& entry : entries) {
      *entry.slot = dlsym(RTLD_DEFAULT, entry.symbol);
      if (*entry.slot == nullptr) return entry.name;
    }
    return nullptr;
  }
};

V8Api v8api{};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

void SpinFor(int64_t ns) {
  const int64_t until = NowNs() + ns;
  while (NowNs() < until) {
  }
}

// The calling thread's CPU time (user and system), in ns.
int64_t OwnCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Another thread's CPU clock: how the watchdog reads the JS thread's.
class ThreadCpuClock {
 public:
  // Called on the thread to be measured.
  bool InitForCurrentThread() {
#ifdef __APPLE__
    port_ = pthread_mach_thread_np(pthread_self());
    return port_ != MACH_PORT_NULL;
#else
    return pthread_getcpuclockid(pthread_self(), &clock_) == 0;
#endif
  }

  // Its CPU time in ns, on the same scale as OwnCpuNs() read on that thread.
  int64_t NowNs() const {
#ifdef __APPLE__
    thread_basic_info_data_t info;
    mach_msg_type_number_t count = THREAD_BASIC_INFO_COUNT;
    if (thread_info(port_, THREAD_BASIC_INFO, reinterpret_cast<thread_info_t>(&info), &count) != KERN_SUCCESS) return 0;
    return (static_cast<int64_t>(info.user_time.seconds) + info.system_time.seconds) * 1000000000 +
           (static_cast<int64_t>(info.user_time.microseconds) + info.system_time.microseconds) * 1000;
#else
    timespec ts{};
    clock_gettime(clock_, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#endif
  }

 private:
#ifdef __APPLE__
  mach_port_t port_ = MACH_PORT_NULL;
#else
  clockid_t clock_{};
#endif
};

class Watchdog {
 public:
  explicit Watchdog(void* isolate) : isolate_(isolate) {}

  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Environment cleanup (process or worker exit): the thread must be gone
  // before the isolate is disposed, since it holds a pointer to it.
  ~Watchdog() {
    if (!started_) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_one();
    pthread_join(thread_, nullptr);
  }

  // JS thread only. Returns false if the thread could not be started.
  bool EnsureThread() {
    if (started_) return true;
    if (!js_cpu_.InitForCurrentThread()) return false;
    // The watchdog must never be picked to run a signal handler (SIGINT,
    // SIGCHLD...): Node expects those on its own threads, as its own helper
    // threads do. A new thread inherits the creator's mask, so block all
    // signals around the creation and restore them. (pthread_create rather
    // than std::thread: node builds addons with -fno-exceptions, and a failed
    // std::thread constructor would abort the daemon instead of returning.)
    sigset_t all, saved;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, &saved) != 0) return false;
    const int rc = pthread_create(&thread_, nullptr, &Watchdog::Start, this);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (rc != 0) return false;
    started_ = true;
    pthread_setname_np(thread_, "dso-watchdog");
    return true;
  }

  // JS thread only: start guarding the outermost call.
  void Arm(int64_t budget_ns) {
    const uint64_t gen = gen_.load(std::memory_order_relaxed) + 1;
    gen_.store(gen, std::memory_order_relaxed);
    // The earliest the budget can be used up: a thread's CPU time grows no faster than the wall clock.
    const int64_t now = NowNs();
    const int64_t deadline = now + budget_ns;
    // The thread's CPU clock is a system call on many VMs (~0.5 us, more than
    // the rest of a guarded call), so it is read at most once per
    // kCpuSampleNs of wall time. The CPU time used before this arm is at most
    // the last reading plus the wall time since: taking that as the start
    // can only make the watchdog fire later (by less than kCpuSampleNs),
    // never earlier, against budgets of milliseconds.
    if (now - cpu_sampled_at_ >= kCpuSampleNs) {
      cpu_sample_ = OwnCpuNs();
      cpu_sampled_at_ = now;
    }
    budget_ns_.store(budget_ns, std::memory_order_relaxed);
    cpu_start_.store(cpu_sample_ + (now - cpu_sampled_at_), std::memory_order_relaxed);
    deadline_.store(deadline, std::memory_order_relaxed);
    // seq_cst pairs with the watchdog's seq_cst store of wake_at_ followed by
    // its re-read of slot_ (a Dekker handshake): either the watchdog sees
    // this arm before it sleeps, or this thread sees when it will next wake.
    slot_.store(gen << 1, std::memory_order_seq_cst);
    if (deadline < wake_at_.load(std::memory_order_seq_cst)) {
      // Parked, or sleeping past our deadline: the one slow path. Taking the
      // mutex guarantees the watchdog is inside its wait (not between its
      // last check and the wait), so the notification cannot be lost.
      std::lock_guard<std::mutex> lock(mutex_);
      notifies_.fetch_add(1, std::memory_order_relaxed);
      cv_.notify_one();
    }
  }

  // JS thread only: stop guarding. Returns true if this call's termination
  // was requested; the request has then certainly been made (not merely
  // about to be), so the caller can cancel it.
  bool Disarm() {
    if (disarm_delay_ns > 0) SpinFor(disarm_delay_ns);
    const uint64_t prev = slot_.exchange(0, std::memory_order_seq_cst);
    if ((prev & kClaimed) == 0) return false;
    const uint64_t gen = prev >> 1;
    // The watchdog claimed the call and is between the claim and the end of
    // TerminateExecution() (a few hundred ns, unless it was descheduled).
    while (fired_gen_.load(std::memory_order_acquire) != gen) {
      std::this_thread::yield();
    }
    return true;
  }

  int depth = 0;  // Guarded calls on the JS stack (JS thread only).
  // The last reading of the JS thread's CPU clock and the wall time it was
  // taken at (JS thread only); INT64_MIN / 2 so that the first arm reads it.
  int64_t cpu_sample_ = 0;
  int64_t cpu_sampled_at_ = INT64_MIN / 2;
  // Tests only: widens the window between fn's return and the disarm, where
  // a termination request must be cancelled rather than leak (JS thread only).
  int64_t disarm_delay_ns = 0;
  // Terminations cancelled because fn had returned or thrown on its own by
  // the time the call disarmed (JS thread only).
  uint64_t late = 0;

  double interrupts() const { return static_cast<double>(interrupts_.load(std::memory_order_relaxed)); }
  double notifies() const { return static_cast<double>(notifies_.load(std::memory_order_relaxed)); }
  double late_fires() const { return static_cast<double>(late); }
  double wakeups() const { return static_cast<double>(wakeups_.load(std::memory_order_relaxed)); }
  double cpu_rechecks() const { return static_cast<double>(cpu_rechecks_.load(std::memory_order_relaxed)); }
  bool started() const { return started_; }
  void* isolate() const { return isolate_; }

 private:
  static void* Start(void* self) {
    static_cast<Watchdog*>(self)->Run();
    return nullptr;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    // The generation last seen armed or idle: lingering after activity and
    // parking only when a whole linger passed with no call keeps bursts of
    // calls off the notify path without waking an idle daemon forever.
    uint64_t seen_gen = 0;
    bool lingered = false;
    // When to read the armed call's CPU clock (next): its wall-clock deadline
    // at first, then as much later as it had budget left at the last reading.
    uint64_t checked_gen = 0;
    int64_t check_at = 0;
    while (!stopping_) {
      wakeups_.fetch_add(1, std::memory_order_relaxed);
      const uint64_t word = slot_.load(std::memory_order_seq_cst);
      const int64_t now = NowNs();
      int64_t wake;
      if (word != 0 && (word & kClaimed) == 0) {
        const uint64_t gen = word >> 1;
        // The fields below may be a later call's if the slot moved on since
        // the load: the compare-exchange then fails, and a wait computed from
        // them is skipped by the re-read of slot_ before waiting.
        if (gen != checked_gen) {
          checked_gen = gen;
          check_at = deadline_.load(std::memory_order_relaxed);
        }
        seen_gen = gen;
        lingered = false;
        if (now >= check_at) {
          const int64_t used = js_cpu_.NowNs() - cpu_start_.load(std::memory_order_relaxed);
          const int64_t left = budget_ns_.load(std::memory_order_relaxed) - used;
          if (left > 0) {
            // Paused, preempted or blocked for part of the time: not the guest's to pay.
            cpu_rechecks_.fetch_add(1, std::memory_order_relaxed);
            check_at = now + left;
          }
        }
        if (now >= check_at) {
          uint64_t expected = word;
          if (slot_.compare_exchange_strong(expected, word | kClaimed,
                                            std::memory_order_seq_cst)) {
            // Thread-safe by V8's contract; takes effect at the next
            // interrupt check of the JS thread, or is cancelled by Disarm's
            // caller if the call has already returned.
            v8api.terminate(isolate_);
            interrupts_.fetch_add(1, std::memory_order_relaxed);
            fired_gen_.store(gen, std::memory_order_release);
          }
          continue;
        }
        wake = check_at;
      } else {
        const uint64_t gen = gen_.load(std::memory_order_relaxed);
        if (gen != seen_gen || !lingered) {
          // Linger no longer than the last budget: a call arriving now with
          // that budget has a later deadline, so it need not wake us.
          seen_gen = gen;
          lingered = true;
          wake = now + budget_ns_.load(std::memory_order_relaxed);
        } else {
          wake = kNever;
        }
      }
      wake_at_.store(wake, std::memory_order_seq_cst);
      // The other half of the handshake in Arm(): an arm that read the
      // previous wake_at_ and so did not notify is seen here.
      if (slot_.load(std::memory_order_seq_cst) != word) continue;
      if (wake == kNever) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, Clock::time_point(std::chrono::nanoseconds(wake)));
      }
    }
  }

  void* const isolate_;
  pthread_t thread_{};
  bool started_ = false;  // JS thread only.
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;  // Guarded by mutex_.

  // Written by the JS thread only; read by the watchdog to notice activity.
  std::atomic<uint64_t> gen_{0};
  std::atomic<uint64_t> slot_{0};
  std::atomic<int64_t> deadline_{0};
  // The JS thread's CPU time when the armed call started (ns).
  std::atomic<int64_t> cpu_start_{0};
  ThreadCpuClock js_cpu_;  // Set by EnsureThread, before the thread starts.
  // When the watchdog will next look at slot_ (kNever while parked). Starts
  // at kNever so the first Arm notifies.
  std::atomic<int64_t> wake_at_{kNever};
  std::atomic<uint64_t> fired_gen_{0};
  // The last outermost budget: how long an idle watchdog lingers before it
  // parks (written by the JS thread).
  std::atomic<int64_t> budget_ns_{250LL * 1000 * 1000};

  std::atomic<uint64_t> interrupts_{0};
  std::atomic<uint64_t> notifies_{0};
  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> cpu_rechecks_{0};
};

// The one way out of a callback on failure: Node-API throws whatever is
// pending (or nothing, if the env can no longer run JS) when it returns.
#define NAPI_OR_RETURN(call) \
  do {                       \
    if ((call) != napi_ok) { \
      return nullptr;        \
    }                        \
  } while (0)

// Drops the exception napi_call_function stored for a termination (see the
// comment at the top): what happens next is V8's state, not a stored value.
void ForgetTermination(napi_env env) {
  napi_value ignored;
  napi_get_and_clear_last_exception(env, &ignored);
}

// The error the outermost guarded call throws after cancelling the
// termination: a plain Error that JS can catch, recognisable by its code
// (host/sandbox/watchdog.ts turns it into a DsoError).
napi_value ThrowInterrupted(napi_env env, double budget_ms) {
  char text[96];
  snprintf(text, sizeof text, "guest call interrupted: ran past its %g ms CPU budget", budget_ms);
  napi_value code, message, error, budget;
  NAPI_OR_RETURN(napi_create_string_utf8(env, "ERR_GUEST_INTERRUPTED", NAPI_AUTO_LENGTH, &code));
  NAPI_OR_RETURN(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message));
  // napi_create_error sets `code` itself.
  NAPI_OR_RETURN(napi_create_error(env, code, message, &error));
  NAPI_OR_RETURN(napi_create_double(env, budget_ms, &budget));
  NAPI_OR_RETURN(napi_set_named_property(env, error, "budgetMs", budget));
  napi_throw(env, error);
  return nullptr;
}

napi_value ThrowNotAFunction(napi_env env) {
  napi_throw_type_error(env, nullptr, "callGuarded: fn must be a function");
  return nullptr;
}

// callGuarded(fn, budgetMs): calls fn() with no arguments and returns its
// result; interrupts it once it has used budgetMs of the thread's CPU time.
napi_value CallGuarded(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  void* data = nullptr;
  NAPI_OR_RETURN(napi_get_cb_info(env, info, &argc, args, nullptr, &data));
  Watchdog* wd = static_cast<Watchdog*>(data);
  if (argc < 2) return ThrowNotAFunction(env);
  // fn's type is checked by napi_call_function itself (napi_invalid_arg, nothing thrown): one call less per call.
  double budget_ms = 0;
  if (napi_get_value_double(env, args[1], &budget_ms) != napi_ok) {
    napi_throw_type_error(env, nullptr, "callGuarded: budgetMs must be a number");
    return nullptr;
  }
  if (!(budget_ms > 0 && budget_ms <= kMaxBudgetMs)) {
    napi_throw_range_error(env, nullptr, "callGuarded: budgetMs must be > 0 and <= 2147483647");
    return nullptr;
  }
  napi_value receiver;
  NAPI_OR_RETURN(napi_get_undefined(env, &receiver));
  void* const isolate = wd->isolate();
  napi_value result = nullptr;

  if (wd->depth > 0) {
    // Nested (a guest called a host function that guards another guest):
    // the outermost deadline rules and this budget is ignored. An exception
    // propagates as is (Node-API rethrows it), and a termination must keep
    // unwinding through the guest frames between here and the outermost
    // call, which alone cancels it (cancelling here would hand the guest a
    // catchable error, and the outer guest could carry on past its budget).
    ++wd->depth;
    const napi_status status = napi_call_function(env, receiver, args[0], 0, nullptr, &result);
    --wd->depth;
    if (status == napi_ok) return result;
    if (status == napi_invalid_arg) return ThrowNotAFunction(env);
    if (v8api.is_terminating(isolate)) ForgetTermination(env);
    return nullptr;
  }

  if (!wd->EnsureThread()) {
    napi_throw_error(env, nullptr, "callGuarded: cannot start the watchdog thread");
    return nullptr;
  }

  wd->depth = 1;
  wd->Arm(static_cast<int64_t>(budget_ms * 1e6));
  const napi_status status = napi_call_function(env, receiver, args[0], 0, nullptr, &result);
  const bool fired = wd->Disarm();
  wd->depth = 0;
  if (status == napi_ok) {
    if (fired) {
      // fn returned just as the budget ran out: it keeps its result (the
      // work is done, an interrupt now would only waste it), and the
      // termination, pending or not, must not reach later JS.
      v8api.cancel(isolate);
      ++wd->late;
    }
    return result;
  }
  const bool terminated = v8api.is_terminating(isolate);
  if (fired) {
    // Ours: whether it already unwound fn or is still pending (fn threw just
    // as the budget ran out), it must not reach later JS.
    v8api.cancel(isolate);
    if (terminated) {
      ForgetTermination(env);
      return ThrowInterrupted(env, budget_ms);
    }
    ++wd->late;
  } else if (terminated) {
    // Somebody else's termination (worker.terminate(), process exit): keep
    // unwinding, as node's contextify does.
    ForgetTermination(env);
    return nullptr;
  }
  if (status == napi_invalid_arg) return ThrowNotAFunction(env);
  // fn threw: Node-API rethrows the stored exception, the same value.
  return nullptr;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  NAPI_OR_RETURN(napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data));
  const Watchdog* wd = static_cast<const Watchdog*>(data);
  napi_value out;
  NAPI_OR_RETURN(napi_create_object(env, &out));
  napi_value started;
  NAPI_OR_RETURN(napi_get_boolean(env, wd->started(), &started));
  NAPI_OR_RETURN(napi_set_named_property(env, out, "threadStarted", started));
  const struct {
    const char* key;
    double value;
  } counters[] = {
      {"interrupts", wd->interrupts()},     {"notifies", wd->notifies()},
      {"wakeups", wd->wakeups()},           {"lateFires", wd->late_fires()},
      {"cpuRechecks", wd->cpu_rechecks()},  {"depth", static_cast<double>(wd->depth)},
  };
  for (const auto& counter : counters) {
    napi_value number;
    NAPI_OR_RETURN(napi_create_double(env, counter.value, &number));
    NAPI_OR_RETURN(napi_set_named_property(env, out, counter.key, number));
  }
  return out;
}

// threadCpuTime(): the calling (JS) thread's CPU time in ms, user and system,
// for charging a session's command with what it used (host/ftp/scheduler.ts).
napi_value ThreadCpuTime(napi_env env, napi_callback_info) {
  napi_value ms;
  NAPI_OR_RETURN(napi_create_double(env, static_cast<double>(OwnCpuNs()) / 1e6, &ms));
  return ms;
}

// Tests only: setDisarmDelayForTesting(ns).
napi_value SetDisarmDelay(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  void* data = nullptr;
  NAPI_OR_RETURN(napi_get_cb_info(env, info, &argc, &arg, nullptr, &data));
  double ns = 0;
  if (argc < 1 || napi_get_value_double(env, arg, &ns) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setDisarmDelayForTesting: ns must be a number");
    return nullptr;
  }
  static_cast<Watchdog*>(data)->disarm_delay_ns = ns > 0 && ns < 1e10 ? static_cast<int64_t>(ns) : 0;
  return nullptr;
}

void Cleanup(void* arg) { delete static_cast<Watchdog*>(arg); }

// One Watchdog (and thread) per environment, the main thread's or a
// worker's, bound to its own isolate and freed with it. Heap allocated and
// never a static, so an exit() that skips environment cleanup leaves a
// running thread to the OS instead of a joinable thread in a static
// destructor.
napi_value Init(napi_env env, napi_value exports) {
  const char* missing = v8api.Resolve();
  if (missing != nullptr) {
    char text[160];
    snprintf(text, sizeof text, "watchdog: this Node.js does not export %s", missing);
    napi_throw_error(env, "ERR_WATCHDOG_UNUSABLE", text);
    return nullptr;
  }
  void* isolate = v8api.get_current();
  if (isolate == nullptr) {
    napi_throw_error(env, "ERR_WATCHDOG_UNUSABLE", "watchdog: no current V8 isolate");
    return nullptr;
  }
  Watchdog* wd = new Watchdog(isolate);
  if (napi_add_env_cleanup_hook(env, Cleanup, wd) != napi_ok) {
    delete wd;
    return nullptr;
  }
  const napi_property_descriptor methods[] = {
      {"callGuarded", nullptr, CallGuarded, nullptr, nullptr, nullptr, napi_default_jsproperty, wd},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default_jsproperty, wd},
      {"threadCpuTime", nullptr, ThreadCpuTime, nullptr, nullptr, nullptr, napi_default_jsproperty, wd},
      {"setDisarmDelayForTesting", nullptr, SetDisarmDelay, nullptr, nullptr, nullptr, napi_default_jsproperty, wd},
  };
  if (napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
