# Block-sparse GEMM: Y[32,128] (FP32) = X[32,512] (FP8 E5M2) x W[128,512]^T, where W is
# TAI2 pruned 8:4 along K (4 of every 8 weights kept, plus an 8-bit mask per group).
# The declared shape of W is its dense shape; DMA moves packed codes, scales and masks.
.tensor X shape=(32,512) fmt=float8_e5m2
.tensor W shape=(128,512) fmt=tai2 sparsity=8:4
.tensor Y shape=(32,128) fmt=float32
.tile A shape=(32,256) fmt=float8_e5m2
.tile WS shape=(64,256) fmt=tai2 sparsity=8:4
.tile YT shape=(32,64) fmt=float32
.acc C shape=(32,64)

    LOOP r1, 2, 64                 # n: block of 64 output columns
      ACC.ZERO C
      LOOP r2, 2, 256              # k: slice of 256 along K
        DMA.LD A, X, 0, r2
        DMA.LD WS, W, r1, r2
        MMA.SP C, A, WS
      ENDLOOP
      ACC.ST YT, C
      DMA.ST Y, 0, r1, YT
    ENDLOOP
    HALT
