#!/usr/bin/env python3
"""tests/race.py: swap a folder on a program's path while lso runs it.

    race.py PORT ROOT NAME RUNS MARKERS

ROOT/d is a folder holding the inside program NAME; ROOT/x is a symlink to an
outside folder holding an outside program of the same name, which creates its
first argument. A child process swaps ROOT/d and ROOT/x (renameat2
RENAME_EXCHANGE) as fast as it can, while this process sends RUNS sync runs
of d/NAME, each naming a fresh marker in the folder MARKERS. Prints one line:

    runs=N ran=I refused=R other=O outside=K

outside: how many markers exist afterwards (runs of the outside program).
"""
import ctypes
import http.client
import json
import os
import signal
import sys

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def swap_forever(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    a, b = os.fsencode(a), os.fsencode(b)
    while True:
        if renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            os._exit(2)


def run_once(port, name, marker):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"executable_name": name, "args": [marker], "is_async": False})
    conn.request("POST", "/api/execute/", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status == 201:
        return "ran" if json.loads(data)["result"]["return_code"] == 0 else "other"
    return "refused" if resp.status in (400, 403, 410) else "other"


def main():
    port, root, name, runs, markers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    counts = {"ran": 0, "refused": 0, "other": 0}
    swapper = os.fork()
    if swapper == 0:
        swap_forever(os.path.join(root, "d"), os.path.join(root, "x"))
    try:
        for i in range(runs):
            counts[run_once(int(port), "d/" + name, os.path.join(markers, "m%d" % i))] += 1
    finally:
        os.kill(swapper, signal.SIGKILL)
        os.waitpid(swapper, 0)
    # Leave d the inside folder again.
    if os.path.islink(os.path.join(root, "d")):
        ctypes.CDLL(None).renameat2(AT_FDCWD, os.fsencode(os.path.join(root, "d")), AT_FDCWD,
                                    os.fsencode(os.path.join(root, "x")), RENAME_EXCHANGE)
    print("runs=%d ran=%d refused=%d other=%d outside=%d" % (
        runs, counts["ran"], counts["refused"], counts["other"], len(os.listdir(markers))))


if __name__ == "__main__":
    main()
