"""Split one CPU inference call into its parts: per-step BLAS, element-wise, projection.

    python bench/investigations/profile_forward.py float32 64,100,128,256
"""
import statistics
import sys
import time

import numpy as np

import nblstm
from nblstm.cpu import forward as fw
from nblstm.cpu._jit import kernel
from nblstm.cpu.matmul import gemm


def med(f, n=7):
    f(); ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1e3
@kernel
def steps_dot(hp, W, rec, T):
    for t in range(T):
        np.dot(hp, W, rec)
dt=np.dtype(sys.argv[1]).type
B,T,I,H=[int(v) for v in sys.argv[2].split(",")]
x=np.random.default_rng(0).standard_normal((B,T,I)).astype(dt)
p=nblstm.init_params(I,H,dtype=dt,seed=0)
print("lstm", med(lambda: nblstm.lstm(x,p)))
zx=np.random.rand(T,B,4*H).astype(dt)*0.1
W_hhT=np.ascontiguousarray(p.W_hh.T)
na=np.full(T,B,np.int64); ls=np.full(B,T-1,np.int64)
hp=np.zeros((B,H),dt); hn=np.zeros((B,H),dt); cs=np.zeros((B,H),dt)
y=np.empty((T,B,H),dt); hN=np.empty((B,H),dt); cN=np.empty((B,H),dt); cells=np.empty((0,0,0),dt)
rec=np.empty((B,4*H),dt)
z2=zx.copy()
print("recurrence blas", med(lambda: fw.recurrence_blas(z2,0,W_hhT,na,ls,hp,hn,cs,y,hN,cN,cells,False,rec)))
print("per-step dots", med(lambda: steps_dot(hp,W_hhT,rec,T)))
out=np.empty((T*B,4*H),dt)
xi=x.transpose(1,0,2).copy()
print("projection", med(lambda: gemm(xi.reshape(T*B,I), p.W_ih.T, out)))
print("to_internal copy", med(lambda: x.transpose(1,0,2).copy()))
