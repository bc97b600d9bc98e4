# Tiled GEMM on one core: Y[64,256] (bf16) = X[64,1024] (FP8 E4M3) x W[256,1024]^T (TAI4).
# Both operands carry OCP-MX block scales (32 elements along K share one E8M0 scale).
# Double buffering: while the matrix unit multiplies the K slice in buffers A0/W0, the DMA
# engine fills A1/W1 with the next slice, and the other way round. The tile scoreboard makes a
# DMA.LD wait for earlier readers of its tile and an MMA wait for the DMA that fills its operands.
.tensor X shape=(64,1024) fmt=float8_e4m3fn
.tensor W shape=(256,1024) fmt=tai4
.tensor Y shape=(64,256) fmt=bfloat16
.tile A0 shape=(64,128) fmt=float8_e4m3fn
.tile A1 shape=(64,128) fmt=float8_e4m3fn
.tile W0 shape=(64,128) fmt=tai4
.tile W1 shape=(64,128) fmt=tai4
.tile YT shape=(64,64) fmt=bfloat16
.acc C shape=(64,64)

    LOOP r1, 4, 64                  ; n = 0, 64, 128, 192: block of output columns
      ACC.ZERO C
      DMA.LD A0, X, 0, 0            ; prologue: K slice 0 into buffer 0
      DMA.LD W0, W, r1, 0
      LOOP r2, 3, 256               ; k = 0, 256, 512: two K slices per iteration
        DMA.LD A1, X, 0, r2+128     ; fill buffer 1 with slice k+128 ...
        DMA.LD W1, W, r1, r2+128
        MMA C, A0, W0               ; ... while multiplying slice k
        DMA.LD A0, X, 0, r2+256     ; fill buffer 0 with slice k+256 ...
        DMA.LD W0, W, r1, r2+256
        MMA C, A1, W1               ; ... while multiplying slice k+128
      ENDLOOP
      DMA.LD A1, X, 0, 896          ; epilogue: slices 768 and 896
      DMA.LD W1, W, r1, 896
      MMA C, A0, W0
      MMA C, A1, W1
      ACC.ST YT, C                  ; FP32 accumulator -> BF16 tile (round to nearest even)
      DMA.ST Y, 0, r1, YT
    ENDLOOP
    HALT
