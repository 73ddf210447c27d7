#!/usr/bin/env python3
"""Who had the CPUs, every 10 ms: a sampler of the kernel's per-thread scheduler counters.

  schedwatch.py record PIDS SECONDS OUT   PIDS comma-separated; run it under `chrt -f 50` so
                                          that it samples on time on a busy machine
  schedwatch.py bursts OUT PID [T0]       the stretches in which PID's threads ran over 1 ms
                                          per interval, merged when less than 50 ms apart,
                                          with their total CPU ms; seconds from T0 (Unix
                                          time; the first sample's by default)

`record` reads /proc/PID/task/TID/schedstat (nanoseconds run, nanoseconds waited on a run
queue) for every thread of each PID and writes one line per interval: the Unix time, then
`PID:COMM/TID=RUN/WAIT` in ms for each thread that ran or waited over 0.3 ms. These are the
kernel's own totals, so nothing is missed between samples, unlike a sampling profiler; a
thread that waited long while another process ran is a CPU taken from it. Used to find what
ran during the fan-out's periodic stalls (BENCHMARKS.md, "Where the stalls come from").
"""
import os
import sys
import time


def threads(pids):
    """Run and wait ns of every thread of `pids`, by `PID:COMM/TID`."""
    found = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run, wait, _ = f.read().split()
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except (OSError, ValueError):
                continue  # the thread ended between the listing and the read
            found[f"{pid}:{comm}/{tid}"] = (int(run), int(wait))
    return found


def record(pids, seconds, out):
    end = time.time() + seconds
    before = threads(pids)
    with open(out, "w") as f:
        while time.time() < end:
            time.sleep(0.01)
            now, after = time.time(), threads(pids)
            parts = []
            for key, (run, wait) in after.items():
                if key in before:
                    ran = (run - before[key][0]) / 1e6
                    waited = (wait - before[key][1]) / 1e6
                    if ran > 0.3 or waited > 0.3:
                        parts.append(f"{key}={ran:.1f}/{waited:.1f}")
            f.write(f"{now:.3f} {' '.join(parts)}\n")
            before = after


def bursts(out, pid, t0):
    merged = []
    with open(out) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if t0 is None:
                t0 = float(fields[0])
            at = float(fields[0]) - t0
            ran = sum(
                float(p.split("=")[1].split("/")[0])
                for p in fields[1:]
                if p.startswith(f"{pid}:")
            )
            if ran <= 1.0:
                continue
            if merged and at - merged[-1][1] < 0.05:
                merged[-1][1] = at
                merged[-1][2] += ran
            else:
                merged.append([at, at, ran])
    print(f"| from s | CPU ms of pid {pid} |")
    print("|---:|---:|")
    for start, _, ran in merged:
        print(f"| {start:.2f} | {ran:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        record(sys.argv[2].split(","), float(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "bursts":
        bursts(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) == 5 else None)
    else:
        sys.exit(__doc__)
