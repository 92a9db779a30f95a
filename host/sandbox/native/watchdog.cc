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
// vm's `timeout`, which starts a thread per call (~50 us); N-API has no
// TerminateExecution at all. Hence the V8 API, and one persistent thread.
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
// load and exchange, and a v8::TryCatch (~0.35 us in all, next to ~45 us for
// vm's timeout). The watchdog thread is only signalled
// (futex) when it is parked or would wake later than the new deadline, which
// is once per burst of calls, not once per call.

#include <node.h>
#include <v8.h>

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

using v8::Context;
using v8::Exception;
using v8::External;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Number;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

using Clock = std::chrono::steady_clock;

constexpr uint64_t kClaimed = 1;
// A parked watchdog "wakes" at this time: later than any deadline.
constexpr int64_t kNever = INT64_MAX;
// Longest budget accepted: keeps now + budget far from int64 overflow.
constexpr double kMaxBudgetMs = 2147483647.0;

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
  explicit Watchdog(Isolate* isolate) : isolate_(isolate) {}

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
    const int64_t deadline = NowNs() + budget_ns;
    budget_ns_.store(budget_ns, std::memory_order_relaxed);
    cpu_start_.store(OwnCpuNs(), std::memory_order_relaxed);
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
            isolate_->TerminateExecution();
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

  Isolate* const isolate_;
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

Watchdog* FromData(const FunctionCallbackInfo<Value>& args) {
  return static_cast<Watchdog*>(args.Data().As<External>()->Value());
}

void ThrowTypeError(Isolate* isolate, const char* message) {
  isolate->ThrowException(Exception::TypeError(
      String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

// The error the outermost guarded call throws after cancelling the
// termination: a plain Error that JS can catch, recognisable by its code
// (host/sandbox/watchdog.ts turns it into a DsoError).
void ThrowInterrupted(Isolate* isolate, double budget_ms) {
  Local<Context> context = isolate->GetCurrentContext();
  char text[96];
  snprintf(text, sizeof text, "guest call interrupted: ran past its %g ms CPU budget",
           budget_ms);
  Local<Value> error =
      Exception::Error(String::NewFromUtf8(isolate, text).ToLocalChecked());
  Local<Object> object = error.As<Object>();
  object
      ->Set(context, String::NewFromUtf8Literal(isolate, "code"),
            String::NewFromUtf8Literal(isolate, "ERR_GUEST_INTERRUPTED"))
      .Check();
  object
      ->Set(context, String::NewFromUtf8Literal(isolate, "budgetMs"),
            Number::New(isolate, budget_ms))
      .Check();
  isolate->ThrowException(error);
}

// callGuarded(fn, budgetMs): calls fn() with no arguments and returns its
// result; interrupts it once it has used budgetMs of the thread's CPU time.
void CallGuarded(const FunctionCallbackInfo<Value>& args) {
  Watchdog* wd = FromData(args);
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 2 || !args[0]->IsFunction()) {
    return ThrowTypeError(isolate, "callGuarded: fn must be a function");
  }
  if (!args[1]->IsNumber()) {
    return ThrowTypeError(isolate, "callGuarded: budgetMs must be a number");
  }
  const double budget_ms = args[1].As<Number>()->Value();
  if (!(budget_ms > 0 && budget_ms <= kMaxBudgetMs)) {
    isolate->ThrowException(Exception::RangeError(
        String::NewFromUtf8Literal(isolate,
                                   "callGuarded: budgetMs must be > 0 and <= 2147483647")));
    return;
  }
  Local<Function> fn = args[0].As<Function>();
  Local<Context> context = isolate->GetCurrentContext();
  Local<Value> receiver = v8::Undefined(isolate);

  if (wd->depth > 0) {
    // Nested (a guest called a host function that guards another guest):
    // the outermost deadline rules and this budget is ignored. No TryCatch:
    // an exception propagates as is, and a termination must keep unwinding
    // through the guest frames between here and the outermost call, which
    // alone cancels it (cancelling here would hand the guest a catchable
    // error, and the outer guest could carry on past its budget).
    ++wd->depth;
    MaybeLocal<Value> result = fn->Call(context, receiver, 0, nullptr);
    --wd->depth;
    Local<Value> value;
    if (result.ToLocal(&value)) args.GetReturnValue().Set(value);
    return;
  }

  if (!wd->EnsureThread()) {
    isolate->ThrowException(Exception::Error(String::NewFromUtf8Literal(
        isolate, "callGuarded: cannot start the watchdog thread")));
    return;
  }

  bool interrupted = false;
  {
    TryCatch try_catch(isolate);
    wd->depth = 1;
    wd->Arm(static_cast<int64_t>(budget_ms * 1e6));
    MaybeLocal<Value> result = fn->Call(context, receiver, 0, nullptr);
    const bool fired = wd->Disarm();
    wd->depth = 0;
    Local<Value> value;
    const bool returned = result.ToLocal(&value);
    const bool terminated = !returned && try_catch.HasTerminated();
    if (fired) {
      // Ours: whether it already unwound fn or is still pending (fn returned
      // or threw just as the budget ran out), it must not reach later JS.
      // A call that completed keeps its result: the work is done, and an
      // interrupt now would only waste it.
      isolate->CancelTerminateExecution();
      interrupted = terminated;
      if (!terminated) ++wd->late;
    } else if (terminated) {
      // Somebody else's termination (worker.terminate(), process exit):
      // keep unwinding, as node's contextify does.
      return;
    }
    if (!interrupted) {
      if (returned) {
        args.GetReturnValue().Set(value);
      } else if (try_catch.HasCaught()) {
        try_catch.ReThrow();
      }
      return;
    }
  }
  ThrowInterrupted(isolate, budget_ms);
}

void Stats(const FunctionCallbackInfo<Value>& args) {
  Watchdog* wd = FromData(args);
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  Local<Object> out = Object::New(isolate);
  auto set = [&](const char* key, Local<Value> value) {
    out->Set(context, String::NewFromUtf8(isolate, key).ToLocalChecked(), value).Check();
  };
  set("threadStarted", v8::Boolean::New(isolate, wd->started()));
  set("interrupts", Number::New(isolate, wd->interrupts()));
  set("notifies", Number::New(isolate, wd->notifies()));
  set("wakeups", Number::New(isolate, wd->wakeups()));
  set("lateFires", Number::New(isolate, wd->late_fires()));
  set("cpuRechecks", Number::New(isolate, wd->cpu_rechecks()));
  set("depth", Number::New(isolate, wd->depth));
  args.GetReturnValue().Set(out);
}

// threadCpuTime(): the calling (JS) thread's CPU time in ms, user and system,
// for charging a session's command with what it used (host/ftp/scheduler.ts).
void ThreadCpuTime(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(Number::New(args.GetIsolate(), static_cast<double>(OwnCpuNs()) / 1e6));
}

// Tests only: setDisarmDelayForTesting(ns).
void SetDisarmDelay(const FunctionCallbackInfo<Value>& args) {
  Watchdog* wd = FromData(args);
  if (args.Length() < 1 || !args[0]->IsNumber()) {
    return ThrowTypeError(args.GetIsolate(), "setDisarmDelayForTesting: ns must be a number");
  }
  const double ns = args[0].As<Number>()->Value();
  wd->disarm_delay_ns = ns > 0 && ns < 1e10 ? static_cast<int64_t>(ns) : 0;
}

void Cleanup(void* arg) { delete static_cast<Watchdog*>(arg); }

}  // namespace

// Context-aware, so worker threads can load it too: each environment gets its
// own Watchdog (and thread), bound to its own isolate, freed with it. Heap
// allocated and never a static, so an exit() that skips environment cleanup
// leaves a running thread to the OS instead of a joinable std::thread in a
// static destructor (std::terminate).
NODE_MODULE_INIT(/* exports, module, context */) {
  Isolate* isolate = context->GetIsolate();
  Watchdog* wd = new Watchdog(isolate);
  node::AddEnvironmentCleanupHook(isolate, Cleanup, wd);
  Local<External> data = External::New(isolate, wd);
  auto method = [&](const char* name, v8::FunctionCallback callback) {
    Local<Function> fn = FunctionTemplate::New(isolate, callback, data)
                             ->GetFunction(context)
                             .ToLocalChecked();
    Local<String> key = String::NewFromUtf8(isolate, name).ToLocalChecked();
    fn->SetName(key);
    exports->Set(context, key, fn).Check();
  };
  method("callGuarded", CallGuarded);
  method("stats", Stats);
  method("threadCpuTime", ThreadCpuTime);
  method("setDisarmDelayForTesting", SetDisarmDelay);
}
