// libcounter: a library that mod_counter binds to directly (`@external("libcounter", ...)`),
// so loading mod_counter loads it as a needed dependency, as ld.so does for DT_NEEDED.

let count = 0;

export function counter_next(): i32 {
  count += 1;
  return count;
}
