"""Forward + backward at (64, 100, 128, 256) float64 alone in a process, 7 samples (ms).

    python bench/train_alone.py
"""
import time

import numpy as np

import nblstm

B,T,I,H=64,100,128,256
dt=np.float64
rng=np.random.default_rng(0)
x=rng.standard_normal((B,T,I)).astype(dt); p=nblstm.init_params(I,H,dtype=dt,seed=0)
dy=rng.standard_normal((B,T,H)).astype(dt)
def tr():
    y,_,c=nblstm.lstm_forward(x,p); nblstm.lstm_backward(c,dy)
tr(); ts=[]
for _ in range(7):
    time.sleep(0.3); t=time.perf_counter(); tr(); ts.append(time.perf_counter()-t)
print([round(v*1e3) for v in ts])
