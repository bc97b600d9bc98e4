# LLaMA block pieces on one (16,128) head tile: RMSNorm with a learned gain, then RoPE.
#   y = x * rsqrt(mean(x^2) + eps) * g            (g: (1,128), broadcast down the rows)
#   q = y * cos + rotate_half(y) * sin            (cos, sin: (16,128) tables for 16 positions)
.tensor X shape=(16,128) fmt=float32
.tensor G shape=(1,128) fmt=float32
.tensor COS shape=(16,128) fmt=bfloat16
.tensor SIN shape=(16,128) fmt=bfloat16
.tensor Q shape=(16,128) fmt=bfloat16
.tile XT shape=(16,128) fmt=float32
.tile SQ shape=(16,128) fmt=float32
.tile GT shape=(1,128) fmt=float32
.tile CT shape=(16,128) fmt=bfloat16
.tile ST shape=(16,128) fmt=bfloat16
.tile R shape=(16,1) fmt=float32
.tile QT shape=(16,128) fmt=bfloat16

    DMA.LD XT, X, 0, 0
    DMA.LD GT, G, 0, 0
    DMA.LD CT, COS, 0, 0
    DMA.LD ST, SIN, 0, 0
    VMUL SQ, XT, XT
    VRSUM R, SQ
    VMULI R, R, 0.0078125          # 1/128: mean
    VADDI R, R, 1e-5               # eps
    VRSQRT R, R
    VMUL XT, XT, R                 # (16,128) x (16,1)
    VMUL XT, XT, GT                # (16,128) x (1,128)
    VROTH SQ, XT                   # rotate_half(y)
    VMUL SQ, SQ, ST
    VFMA QT, XT, CT, SQ            # y * cos + rotate_half(y) * sin
    DMA.ST Q, 0, 0, QT
    HALT
