"""ABOR during a RETR, sent as a real client sends it; prints the replies as JSON.

    python3 abort.py PORT USER PASSWORD FILE MODE

MODE is how ABOR goes out while the server is still sending FILE (the data
connection is read once, then left unread, so the server is blocked writing):
  telnet  RFC 959's sequence, as BSD ftp and lftp send it: Telnet IP, then
          IAC with the Synch's DM as TCP urgent data, then ABOR
  ftplib  what Python's ftplib.FTP.abort() sends: `ABOR\\r\\n` with MSG_OOB
          (its last byte is the urgent one)
  plain   `ABOR\\r\\n` in band
Output: {"retr": [...], "abor": [[...], ...], "noop": [...]} or {"error": "..."}.
"""
import json
import socket
import sys

port, user, password, name, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
control = socket.create_connection(("127.0.0.1", port), timeout=20)
stream = control.makefile("rb")


def reply():
    lines = [stream.readline().decode("utf-8", "replace").rstrip("\r\n")]
    if lines[0][3:4] == "-":
        while len(lines) == 1 or not lines[-1].startswith(lines[0][:3] + " "):
            lines.append(stream.readline().decode("utf-8", "replace").rstrip("\r\n"))
    return lines


def command(line):
    control.sendall(line.encode() + b"\r\n")
    return reply()


out = {}
try:
    reply()
    command("USER " + user)
    command("PASS " + password)
    command("TYPE I")
    pasv = command("PASV")[0]
    numbers = pasv[pasv.index("(") + 1 : pasv.index(")")].split(",")
    data = socket.create_connection(("127.0.0.1", int(numbers[4]) * 256 + int(numbers[5])), timeout=20)
    out["retr"] = command("RETR " + name)
    data.recv(65536)
    if mode == "telnet":
        control.sendall(b"\xff\xf4\xff")
        control.send(b"\xf2", socket.MSG_OOB)
        control.sendall(b"ABOR\r\n")
    elif mode == "ftplib":
        control.sendall(b"ABOR\r\n", socket.MSG_OOB)
    else:
        control.sendall(b"ABOR\r\n")
    out["abor"] = [reply()]
    if out["abor"][0][0].startswith("426"):
        out["abor"].append(reply())
    data.close()
    out["noop"] = command("NOOP")
except Exception as error:  # the replies so far, and why it stopped
    out["error"] = repr(error)
print(json.dumps(out))
