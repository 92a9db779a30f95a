// mod_calc: calls libmath, a library loaded with `LoadFile`, through the global
// scope: SITE CALC <a> <b> answers with their sum and product.
import { API_VERSION, ERROR, HANDLED, OK, addHelp, argc, argv, reply, replyError } from "./sdk";

@external("env", "math_add")
declare function math_add(a: i32, b: i32): i32;

@external("env", "math_mul")
declare function math_mul(a: i32, b: i32): i32;

export const calc_module: i32 = API_VERSION;

export function module_init(): i32 {
  addHelp("CALC", "<sp> a <sp> b");
  return OK;
}

export function site_CALC(): i32 {
  // argv(0) is SITE, argv(1) is CALC.
  if (argc() != 4) {
    replyError("501", "SITE CALC: usage: SITE CALC <a> <b>");
    return ERROR;
  }
  const a = I32.parseInt(argv(2));
  const b = I32.parseInt(argv(3));
  reply("200", "SITE CALC: " + a.toString() + " + " + b.toString() + " = " + math_add(a, b).toString() +
    ", " + a.toString() + " * " + b.toString() + " = " + math_mul(a, b).toString());
  return HANDLED;
}
