"""PyTorch's CPU allocator vs the s2bnn caching CPU allocator, inside PyTorch: the reference
sign_ste composition (forward + backward, 32x64x56x56) timed with each, with the page faults
taken per iteration. One JSON line per allocator.
Usage: /usr/bin/python3 scripts/bench/allocator.py build/Release/libs2bnn_ops.so [THREADS]
"""
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import s2bnn_reference as ref  # noqa: E402


def measure(library, allocator, threads):
    torch.ops.load_library(library)
    torch.set_num_threads(threads)
    if allocator == 's2bnn-caching':
        torch.ops.s2bnn.cpu_allocator_install(8 << 30)
    x = torch.randn(32, 64, 56, 56)
    g = torch.randn_like(x)

    def step():
        leaf = x.detach().requires_grad_()
        ref.sign_ste(leaf).backward(g)

    for _ in range(3):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    iterations = 30
    for _ in range(iterations):
        step()
    elapsed = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {'allocator': allocator, 'threads': threads, 'msPerIteration': elapsed / iterations * 1e3,
            'pageFaultsPerIteration': faults / iterations}


if __name__ == '__main__':
    if len(sys.argv) > 3:  # child: one allocator per process, so neither sees the other's heap
        print(json.dumps(measure(sys.argv[1], sys.argv[3], int(sys.argv[2]))))
    else:
        threads = sys.argv[2] if len(sys.argv) > 2 else str(os.cpu_count())
        for allocator in ('pytorch', 's2bnn-caching'):
            subprocess.run([sys.executable, __file__, sys.argv[1], threads, allocator], check=True)
