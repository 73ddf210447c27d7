#!/usr/bin/env python3
"""Sums `perf script -F comm,event,trace,ip,sym` output of `sched:sched_wakeup` events (with call
graphs) by waking thread, woken thread and the first frames of the waker's own code.

  perf script -i FILE -F comm,event,trace,ip,sym | bench/scripts/wakeups.py MESSAGES [FRAMES]

MESSAGES (the messages sent while recording) turns counts into wake-ups per message; FRAMES
(default 3) is how many of the waker's frames name a call site. Thread names are `comm`s:
`tokio-rt-worker` is the runtime of whichever process (the node's, or the load generator's when
the node wakes it through a socket, seen as `sock_def_readable`). Frames of the kernel's wake-up
path and of tokio's and flume's internals above the call site are skipped, so a site reads as
what the node was doing when it woke someone: `Context::run_task` is tokio waking another worker
once it found work (the last searching worker hands the search on), `spawn` a task spawned, and
`AsyncSignal::fire` a flume channel's receiver woken by a send.
"""
import collections
import re
import sys

# Frames that only carry the wake-up out: the kernel's path and the libraries' plumbing.
PLUMBING = re.compile(
    r"^(try_to_wake|ttwu|wake_up|__wake|futex|__futex|do_futex|__x64|x64_sys|__se_sys|__do_sys|"
    r"__sys|do_syscall|entry_SYSCALL|syscall|__GI|\[unknown\]|_raw|pollwake|ep_|eventfd|"
    r"vfs_write|ksys_write|<&std::fs::File|mio::|core::ptr::drop|"
    r"tokio::runtime::(task::|driver|context|scheduler::(Handle|multi_thread::(park|idle|handle|"
    r"worker::(Shared|<impl tokio::runtime::(task::Schedule|scheduler::multi_thread::handle))))))"
)


def events(lines):
    """Yields (header, frames) per event of `perf script` output."""
    header, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if header:
                yield header, frames
            header, frames = None, []
        elif header is None:
            header = line
        else:
            parts = line.strip().split(None, 1)
            frames.append(re.sub(r"\+0x[0-9a-f]+", "", parts[1]) if len(parts) > 1 else "")
    if header:
        yield header, frames


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    messages = int(sys.argv[1])
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pairs = collections.Counter()
    sites = collections.defaultdict(collections.Counter)
    for header, frames in events(sys.stdin):
        if "sched_wakeup" not in header:
            continue
        waker = header.split()[0]
        woken = re.search(r"comm=(\S+)", header)
        if not woken:
            continue
        # Numbered threads (hub-shard-3) count together.
        pair = (re.sub(r"-\d+$", "", waker), re.sub(r"-\d+$", "", woken.group(1)))
        pairs[pair] += 1
        own = [f for f in frames if not PLUMBING.match(f)]
        sites[pair][" < ".join(f[:70] for f in own[:depth]) or "(no frames)"] += 1
    for pair, count in pairs.most_common():
        if count < messages / 100:
            continue
        print(f"{pair[0]} -> {pair[1]}: {count / messages:.2f} per message")
        for site, n in sites[pair].most_common(4):
            print(f"    {n / messages:.2f}  {site}")


if __name__ == "__main__":
    main()
