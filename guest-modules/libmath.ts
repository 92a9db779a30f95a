// libmath: a shared library for `LoadFile`. Its exports enter the global scope,
// where any module can import them from `env` (mod_calc does).

export function math_add(a: i32, b: i32): i32 {
  return a + b;
}

export function math_mul(a: i32, b: i32): i32 {
  return a * b;
}

/** The n-th Fibonacci number, iteratively (wrapping at 32 bits). */
export function math_fib(n: i32): i32 {
  let a = 0;
  let b = 1;
  for (let i = 0; i < n; i++) {
    const next = a + b;
    a = b;
    b = next;
  }
  return a;
}
