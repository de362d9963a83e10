"""Time the three CPU step paths (serial, tiles, blas) forced one after the other.

    python bench/cpu_paths.py float32,float64 1,100,32,128 32,50,32,64

Prints ms per call, inference and backward, for each (B,T,I,H) point.
"""
import sys, time, statistics
import numpy as np
import nblstm
from nblstm.cpu import config
def med(f, n=5):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)
pts=[tuple(map(int,a.split(","))) for a in sys.argv[2:]]
for dt in [np.dtype(d).type for d in sys.argv[1].split(",")]:
  for (B,T,I,H) in pts:
    x=np.random.default_rng(0).standard_normal((B,T,I)).astype(dt)
    p=nblstm.init_params(I,H,dtype=dt,seed=0)
    line=f"{np.dtype(dt).name} {(B,T,I,H)} work={B*H*4*H}"
    for path in ("serial","tiles","blas"):
        config.path=path
        inf=med(lambda: nblstm.lstm(x,p))
        y,_,c=nblstm.lstm_forward(x,p)
        bw=med(lambda: nblstm.lstm_backward(c,y))
        line+=f" | {path} {inf*1e3:.2f} {bw*1e3:.2f}"
    print(line, flush=True)
