#!/usr/bin/env python3
"""Where a server's threads wait on the disk, from the kernel's side
(docs/BENCHMARKS.md, session 12).

    perf record -e sched:sched_switch -g -p $(pgrep -f 'latchkey serve') -o P -- sleep 5
    perf script -i P -F tid,time,event,trace,ip,sym > P.txt
    session12-dstate.py P.txt

For every time a thread of the process was switched out in uninterruptible
sleep (prev_state D: waiting for I/O) it measures how long until it ran
again, and groups those waits by the kernel path it slept in. Then it lists
each wait over 0.5 ms with the Go frames of the store that issued it
(`sqlstore.(*writeQueue).write.func1` is the checkpoint's final pass, which
every commit waits for; `sqlstore.(*checkpointer).checkpoint` a background
pass, which no request waits for).
"""
import collections
import re
import sys

SWITCH = re.compile(r'^\s*(\d+)\s+([\d.]+): sched:sched_switch: prev_comm=.*? prev_pid=(\d+) '
                    r'prev_prio=\d+ prev_state=(\S+) ==> next_comm=.*? next_pid=(\d+)')


def events(path):
    cur = None
    for line in open(path):
        if line.startswith('\t'):
            parts = line.split()
            if cur is not None and len(parts) >= 2:
                cur['stack'].append(parts[1])
            continue
        m = SWITCH.search(line)
        if m:
            cur = {'t': float(m.group(2)), 'prev': int(m.group(3)), 'state': m.group(4),
                   'next': int(m.group(5)), 'stack': []}
            yield cur


def waits(path):
    """(milliseconds, stack) of every D-state sleep that ended in the trace."""
    out = {}
    evs = list(events(path))
    for e in evs:
        out[e['prev']] = (e['t'], e['state'], e['stack'])
        if e['next'] in out:
            t0, state, stack = out.pop(e['next'])
            if state.startswith('D'):
                yield (e['t'] - t0) * 1000, t0, stack


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    by_path = collections.defaultdict(lambda: [0, 0.0, 0.0])
    long = []
    for ms, t0, stack in waits(sys.argv[1]):
        frames = [f for f in stack if not f.startswith(('__schedule', 'schedule', 'io_schedule'))]
        kernel = [f for f in frames if '.' not in f and '/' not in f][:4]
        key = ' < '.join(kernel)
        agg = by_path[key]
        agg[0] += 1
        agg[1] += ms
        agg[2] = max(agg[2], ms)
        if ms > 0.5:
            store = [f.rsplit('/', 1)[-1] for f in frames if 'sqlstore' in f][:2]
            long.append((t0, ms, kernel[-1] if kernel else '', ' < '.join(store)))
    print('D-state waits by kernel path: count, total ms, max ms')
    for key, (n, total, mx) in sorted(by_path.items(), key=lambda kv: -kv[1][1]):
        print(f'{n:6d} {total:9.1f} {mx:7.2f}  {key}')
    print('\nwaits over 0.5 ms, in time order: start (s), ms, kernel path, store frames')
    for t0, ms, k, store in sorted(long):
        print(f'{t0:.3f} {ms:7.2f}  {k}  {store}')


if __name__ == '__main__':
    main()
