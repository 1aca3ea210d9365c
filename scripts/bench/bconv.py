"""The packed binary convolution inside PyTorch: torch.ops.s2bnn.bconv2d_packed (and pack_signs +
bconv2d_packed with the fused scale/shift) vs torch.nn.functional.conv2d of the same +-1 data, on
every ReActNet-A binary conv shape at 224 px, batch 1. One JSON line per shape and thread count.
The same figures as `s2bnn bench-bconv`, measured from Python (a cross-check of the baseline).
Usage: OMP_NUM_THREADS=N /usr/bin/python3 scripts/bench/bconv.py build/Release/libs2bnn_ops.so N
(one process per thread count: torch.set_num_threads(1) alone does not keep libtorch's 1x1 float
convolution on one thread).
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

WIDTHS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


def shapes(size=112):
    seen = {}
    for i in range(1, len(WIDTHS)):
        cin, cout = WIDTHS[i - 1], WIDTHS[i]
        stride = 2 if cin != cout and cout != 64 else 1
        for key in ((cin, size, 3, stride), (cin, (size + 2 - 3) // stride + 1, 1, 1)):
            seen[key] = seen.get(key, 0) + (1 if key[2] == 3 or cin == cout else 2)
        size = (size + 2 - 3) // stride + 1
    return seen


def median_ms(fn, repeats=20):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def main():
    torch.ops.load_library(sys.argv[1])
    s2bnn = torch.ops.s2bnn
    threads = [int(t) for t in sys.argv[2:]] or [1]
    torch.manual_seed(0)
    with torch.no_grad():
        for (c, size, k, stride), count in shapes().items():
            x = torch.randn(1, c, size, size).contiguous(memory_format=torch.channels_last)
            w = torch.randn(c, c, k, k)
            xs, ws = x.sign(), w.sign()
            bias, scale, shift = torch.randn(c), torch.randn(c), torch.randn(c)
            px, pw = s2bnn.pack_signs(xs), s2bnn.pack_weights(w)
            pad = k // 2
            for t in threads:
                torch.set_num_threads(t)
                float_ms = min(median_ms(lambda: F.conv2d(xs, ws, stride=stride, padding=pad)),
                               median_ms(lambda: F.conv2d(xs.contiguous(), ws, stride=stride, padding=pad)))
                packed_ms = median_ms(lambda: s2bnn.bconv2d_packed(px, pw, c, stride, pad))
                layer_ms = median_ms(lambda: s2bnn.bconv2d_packed(s2bnn.pack_signs(x, bias), pw, c, stride, pad,
                                                                  scale, shift))
                print(json.dumps({
                    "shape": f"{c}x{size}x{size}->{c} k{k}s{stride}", "count": count, "threads": t,
                    "floatMs": round(float_ms, 4), "packedMs": round(packed_ms, 4), "layerMs": round(layer_ms, 4),
                    "speedup": round(float_ms / packed_ms, 2), "layerSpeedup": round(float_ms / layer_ms, 2),
                }), flush=True)


if __name__ == "__main__":
    main()
