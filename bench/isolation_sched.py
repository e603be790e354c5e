#!/usr/bin/env python3
"""Where the steady model's slow requests of an isolation run waited: kernel scheduling.

    perf record -k CLOCK_MONOTONIC -e sched:sched_switch -e sched:sched_wakeup -a -o sched.data &
    serve_bench isolation ... --trace run.trace.json      # (bench/isolation_bench.sh writes these)
    kill -INT %1; perf script -i sched.data -F cpu,tid,time,event,trace > sched.txt
    bench/isolation_sched.py run.trace.json sched.txt

For the busiest threads of the server (`modelreg`) and of the clients (`serve_bench`), per phase of
the run (quiet / server loading / loads outside the server): how long a thread waited for a CPU
after being woken, and after being preempted; for the waits over 0.4 ms, which task had the CPU
when the wait ended. The trace's sample times (steady_clock, CLOCK_MONOTONIC) place each event in
its phase.
"""
import bisect
import collections
import json
import re
import sys

SWITCH = re.compile(r"prev_comm=(\S+) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(\S+) next_pid=(\d+)")
WAKEUP = re.compile(r"comm=(\S+) pid=(\d+)")
LINE = re.compile(r"\s*(\d+)\s+\[(\d+)\]\s+([\d.]+): sched:(\w+): (.*)")


def main(trace_path, sched_path):
    trace = json.load(open(trace_path))
    t0 = trace["t0_steady_ms"]
    samples = sorted(trace["samples"])
    starts = [s[0] for s in samples]

    def phase(ms_from_t0):
        i = min(bisect.bisect_left(starts, ms_from_t0), len(samples) - 1)
        tag = samples[i][2]
        return "gap" if tag == 0 else ("quiet", "loading", "outside")[(tag - 1) % 3]

    woken, preempted, on_cpu = {}, {}, {}
    comm_of = {}
    waits = collections.defaultdict(list)  # tid -> (kind, phase, ms, task that had the CPU)
    for line in open(sched_path):
        m = LINE.match(line)
        if not m:
            continue
        t, cpu, event, body = float(m.group(3)) * 1000, int(m.group(2)), m.group(4), m.group(5)
        if event == "sched_wakeup":
            w = WAKEUP.search(body)
            woken[int(w.group(2))] = t
            comm_of[int(w.group(2))] = w.group(1)
            continue
        if event != "sched_switch":
            continue
        s = SWITCH.search(body)
        prev, state, nxt = int(s.group(2)), s.group(3), int(s.group(5))
        comm_of[prev], comm_of[nxt] = s.group(1), s.group(4)
        if state.startswith("R"):
            preempted[prev] = t
        holder = f"{s.group(1)}/{prev}"
        for kind, table in (("woken", woken), ("preempted", preempted)):
            if nxt in table:
                since = table.pop(nxt)
                waits[nxt].append((kind, phase(since - t0), t - since, holder))
        on_cpu[cpu] = nxt

    busiest = sorted(waits, key=lambda tid: -len(waits[tid]))
    threads = [tid for tid in busiest if comm_of.get(tid) in ("modelreg", "serve_bench")][:4]
    for tid in threads:
        print(f"{comm_of[tid]}/{tid}")
        for kind in ("woken", "preempted"):
            for ph in ("quiet", "loading", "outside"):
                xs = sorted(ms for k, p, ms, _ in waits[tid] if k == kind and p == ph)
                if not xs:
                    continue
                long = collections.Counter(h for k, p, ms, h in waits[tid] if k == kind and p == ph and ms > 0.4)
                print(f"   {kind:9} {ph:7} n={len(xs):6} p50={xs[len(xs) // 2] * 1000:5.0f} us "
                      f"p99={xs[int(len(xs) * 0.99)] * 1000:6.0f} us  >0.4 ms: {sum(long.values()):3}  "
                      f"{', '.join(f'{h} {n}' for h, n in long.most_common(3))}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
