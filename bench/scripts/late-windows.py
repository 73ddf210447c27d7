#!/usr/bin/env python3
"""What the threads did in a fan-out run's late windows: a run's timeline (TIMELINE_MS=100)
against its scheduler record (SCHEDWATCH=1), both written by `common.sh`'s `fanout`.

  late-windows.py TIMELINE.md SCHED.txt

Prints, per 100 ms window, the milliseconds each group of threads ran and waited on a run
queue (the server's hub shards, runtime workers, SQLite direct writer, sqlx's SQLite threads;
the load generator; PID 1): first the average over the windows with no late delivery, then
the ten windows with the most deliveries over 10 ms. The server is the first PID in the record.
"""
import collections,sys
tlf,scf=sys.argv[1],sys.argv[2]
tl=open(tlf).read().splitlines()
t0=float(tl[0].split()[3])
wins=[]
for l in tl[3:]:
    p=[x.strip() for x in l.split('|')[1:-1]]
    if len(p)<4: continue
    wins.append((int(p[0]),int(p[1]),int(p[2]),float(p[3])))
sched=[];node=None
for l in open(scf):
    parts=l.split()
    t=float(parts[0]); d=collections.Counter()
    if node is None: node=parts[1].split(':')[0]
    for e in parts[1:]:
        k,v=e.rsplit('=',1); r,w=map(float,v.split('/'))
        pid,rest=k.split(':',1); comm=rest.split('/')[0]
        if pid=='1': g='pid1'
        elif pid!=node: g='client'
        elif comm.startswith('hub-shard'): g='shards'
        elif comm.startswith('tokio-rt'): g='rt'
        elif comm.startswith('sqlite-dir'): g='direct'
        elif comm.startswith('sqlx'): g='sqlx'
        else: g='other'
        d[g+'.run']+=r; d[g+'.wait']+=w
    sched.append((t,d))
ts=sched[0][0]
def window_stats(s,e):
    c=collections.Counter()
    for t,d in sched:
        if s<=t<e: c.update(d)
    return c
keys=['shards','rt','direct','sqlx','other','client','pid1']
def fmt(c): return ' '.join(f"{k}={c[k+'.run']:.0f}/{c[k+'.wait']:.0f}" for k in keys)
valid=[w for w in wins if t0+w[0]/1000>=ts]
late=sorted(valid,key=lambda w:-w[2])[:10]
normal=[w for w in valid if w[2]==0]
avg=collections.Counter()
for w in normal: avg.update(window_stats(t0+w[0]/1000, t0+w[0]/1000+0.1))
for k in avg: avg[k]/=max(1,len(normal))
print("run/wait ms per 100 ms window; normal avg of", len(normal))
print("               ", fmt(avg))
for w in late:
    print(f"{w[0]:6d} late {w[2]:5d} worst {w[3]:5.1f}", fmt(window_stats(t0+w[0]/1000, t0+w[0]/1000+0.1)))
print(len([w for w in valid if w[2]>0]), "windows with late;", sum(w[2] for w in valid), "late")
