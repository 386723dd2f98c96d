#!/usr/bin/env python3
"""bench/kprofile.py: sort a pooler's profile samples by what its stack was doing.

Reads `perf script -F comm,ip,sym,dso` on stdin (call stacks, leaf first); argv[1]
is bench/compare's summary.tsv (each pooler's CPU microseconds per transaction),
argv[2] a line saying what ran. Prints, per pooler, each category's share of its
samples and the microseconds per transaction that share stands for."""
import sys

# (category, frames that put a stack in it), first match wins, tested leaf to root
# over the whole stack: a send's softirq (the receiver's TCP path) is a send.
CATEGORIES = [
    ("send: waking the receiver", ("sock_def_readable", "unix_write_space", "sk_stream_write_space"),
     ("tcp_sendmsg", "unix_stream_sendmsg", "sock_sendmsg")),
    ("send: the rest (TCP/IP, or the Unix socket's copy)", None, ("tcp_sendmsg", "unix_stream_sendmsg", "sock_sendmsg")),
    ("receive: copy out of the socket", None, ("tcp_recvmsg", "unix_stream_recvmsg", "sock_recvmsg")),
    ("sleep and wake-up (context switch)", None, ("schedule", "finish_task_switch.isra.0", "__schedule")),
]
LOOP_PREFIXES = ("io_", "__io_", "__do_sys_io_uring", "__x64_sys_io_uring", "ep_", "do_epoll",
                 "__x64_sys_epoll", "__sys_epoll")
ORDER = [c[0] for c in CATEGORIES] + ["event loop: epoll / io_uring in the kernel",
                                      "other kernel (syscall entry, timers, memory)", "user space"]


def pooler_of(comm):
    if comm == "pgbouncer":
        return "pgbouncer"
    if comm.startswith("pgring"):
        return "pgring"
    return None


def classify(frames):
    """frames: [(sym, is_kernel)] leaf first."""
    if not frames or not frames[0][1]:
        return "user space"
    syms = {s for s, k in frames if k}
    for name, inner, outer in CATEGORIES:
        if syms.intersection(outer) and (inner is None or syms.intersection(inner)):
            return name
    if any(s.startswith(LOOP_PREFIXES) for s in syms):
        return "event loop: epoll / io_uring in the kernel"
    return "other kernel (syscall entry, timers, memory)"


def samples(lines):
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif comm is None and not line[0].isspace():
            comm = line.split()[0]
        else:
            parts = line.split(None, 1)
            rest = parts[1] if len(parts) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            frames.append((sym.strip() or "[unknown]", "kernel.kallsyms" in dso))
    if comm is not None:
        yield comm, frames


def main():
    cpu = {}
    with open(sys.argv[1]) as f:
        for row in f:
            col = row.rstrip("\n").split("\t")
            if len(col) > 3 and col[1] == "ok" and col[3] not in ("-", "fail"):
                cpu[col[0]] = float(col[3])
    counts = {}
    for comm, frames in samples(sys.stdin):
        p = pooler_of(comm)
        if p:
            c = counts.setdefault(p, {})
            k = classify(frames)
            c[k] = c.get(k, 0) + 1
    print(sys.argv[2] if len(sys.argv) > 2 else "")
    poolers = [p for p in ("pgbouncer", "pgring") if p in counts]
    head = "%-52s" % "where the pooler's CPU went"
    for p in poolers:
        head += " %10s %8s" % (p + " %", "us/tx")
    print(head)
    for k in ORDER:
        line = "%-52s" % k
        for p in poolers:
            n = sum(counts[p].values())
            share = counts[p].get(k, 0) / n
            us = "%.2f" % (share * cpu[p]) if p in cpu else "-"
            line += " %10.1f %8s" % (100 * share, us)
        print(line)
    line = "%-52s" % "total (samples; CPU us/tx from /proc)"
    for p in poolers:
        line += " %10d %8s" % (sum(counts[p].values()), "%.2f" % cpu[p] if p in cpu else "-")
    print(line)


if __name__ == "__main__":
    main()
