#!/usr/bin/env python3
# tests/reactivate.py PORTFILE LOG PROGRAM [ARG...]: an Accept=no launcher
# that, like systemd and unlike systemd-socket-activate (which execs the
# program once), starts the program again each time it has exited and a
# connection waits. It listens on a free 127.0.0.1 port (written to
# PORTFILE), keeps the listening socket for the whole run, and hands it to
# each activation as fd 3 with LISTEN_FDS=1 and LISTEN_PID. One line per
# activation in LOG: "exit CODE" (or "signal N") when it ends.
# Ends on SIGTERM (the running program gets SIGTERM first).
import os
import select
import signal
import socket
import sys

portfile, log, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
child = None


def stop(signum, frame):
    if child:
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
with open(portfile + ".tmp", "w") as f:
    f.write("%d\n" % listener.getsockname()[1])
os.rename(portfile + ".tmp", portfile)


def activate():
    pid = os.fork()
    if pid == 0:
        if listener.fileno() != 3:
            os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.execv(argv[0], argv)
    return pid


while True:
    # Like a socket unit: watch the socket only while the service is down.
    select.select([listener], [], [])
    child = activate()
    _, status = os.waitpid(child, 0)
    child = None
    with open(log, "a") as f:
        if os.WIFEXITED(status):
            f.write("exit %d\n" % os.WEXITSTATUS(status))
        else:
            f.write("signal %d\n" % os.WTERMSIG(status))
