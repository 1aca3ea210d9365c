"""What the Python halves of the s2bnn benchmarks share: the command line (LIBS2BNN_OPS
MIN_TIME_MS THREADS), the counting allocator, and the timing loop of lib/bench/timing.ts."""
import sys
import time

import torch


def setup():
    """Loads libs2bnn_ops.so for its memory counter only (cache limit 0: PyTorch keeps its own
    allocation behaviour), sets the thread count, and returns MIN_TIME_MS."""
    torch.ops.load_library(sys.argv[1])
    torch.set_num_threads(int(sys.argv[3]))
    torch.ops.s2bnn.cpu_allocator_install(0)
    return float(sys.argv[2])


def median_ms(run, min_time_ms, min_samples, max_samples):
    samples = []
    start = time.perf_counter()
    while len(samples) < min_samples or (
            len(samples) < max_samples and (time.perf_counter() - start) * 1e3 < min_time_ms):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return samples[len(samples) // 2]
