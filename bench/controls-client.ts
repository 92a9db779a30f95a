/**
 * The floor of a controls client: `node controls-client.js SOCKET` connects,
 * sends `lsmod` in proftpd's wire format (host/controls/wire.ts: host-endian
 * ints, status 0, argc 1, the action's length and bytes), reads the response
 * to its last line and exits. No argument parsing, no checks, no output, and
 * nothing imported but node:net (taken as dsoctl takes its built-ins): what
 * any node client of the socket pays, which `dsoctl lsmod` is measured
 * against (bench/controls.ts).
 */
const { createConnection } = process.getBuiltinModule("node:net");

const socketPath = process.argv[2] ?? "";
const action = Buffer.from("lsmod");
const request = Buffer.alloc(12 + action.length);
const ints = new Int32Array(request.buffer, request.byteOffset, 3);
ints.set([0, 1, action.length]);
action.copy(request, 12);

/** True once `bytes` holds a whole response: status, argc, then argc (length, bytes) pairs. */
function complete(bytes: Buffer): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (bytes.length < 8) return false;
  let at = 8;
  for (let argc = view.getUint32(4, little); argc > 0; argc--) {
    if (bytes.length < at + 4) return false;
    at += 4 + view.getUint32(at, little);
  }
  return bytes.length >= at;
}

let received = Buffer.alloc(0);
const socket = createConnection(socketPath, () => socket.write(request));
socket.on("data", (chunk: Buffer) => {
  received = Buffer.concat([received, chunk]);
  if (complete(received)) socket.destroy();
});
