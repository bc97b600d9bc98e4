# SPMD GEMM over all cores: Y[512,64] = X[512,256] x W[64,256]^T, rows split by core.
# Each core takes rows [cid * 512/ncores, (cid+1) * 512/ncores) in blocks of 32 rows;
# ncores must divide 16 (1, 2, 4, 8 or 16 cores). A BARRIER ends the program so every
# store is complete when any core halts.
.tensor X shape=(512,256) fmt=float8_e4m3fn
.tensor W shape=(64,256) fmt=float4_e2m1fn
.tensor Y shape=(512,64) fmt=bfloat16
.tile A shape=(32,256) fmt=float8_e4m3fn
.tile WT shape=(64,256) fmt=float4_e2m1fn
.tile YT shape=(32,64) fmt=bfloat16
.acc C shape=(32,64)

    LI r5, 512
    DIV r5, r5, ncores             # rows per core
    MUL r6, cid, r5                # first row of this core
    DIVI r7, r5, 32                # row blocks per core
    DMA.LD WT, W, 0, 0             # the weights stay on chip
    LOOP r1, r7, 32
      ADD r2, r6, r1               # first row of this block
      ACC.ZERO C
      DMA.LD A, X, r2, 0
      MMA C, A, WT
      ACC.ST YT, C
      DMA.ST Y, r2, 0, YT
    ENDLOOP
    BARRIER
    HALT
