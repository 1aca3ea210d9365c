"""Python side of `s2bnn bench-model`: a training forward + backward of the reference model
(scripts/python/s2bnn_models.py), timed, with peak CPU tensor memory from the s2bnn counting
allocator (installed with a cache limit of 0: PyTorch keeps its own allocation behaviour).
Usage: python3 model_reference.py LIBS2BNN_OPS MIN_TIME_MS THREADS < case.json
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import s2bnn_models  # noqa: E402

torch.ops.load_library(sys.argv[1])
min_time_ms = float(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))
torch.ops.s2bnn.cpu_allocator_install(0)

case = json.load(sys.stdin)
torch.manual_seed(0)
model = s2bnn_models.build(case['spec']).train()
x = torch.randn(case['batch'], case['spec'].get('inChannels', 3), case['size'], case['size'])
grad_out = torch.randn_like(model(x))


def step():
    model(x).backward(grad_out)
    model.zero_grad(set_to_none=True)


step()
samples = []
start = time.perf_counter()
while len(samples) < 3 or (time.perf_counter() - start) * 1e3 < min_time_ms:
    t0 = time.perf_counter()
    step()
    samples.append((time.perf_counter() - t0) * 1e3)
    if len(samples) >= 50:
        break
samples.sort()
base = torch.ops.s2bnn.memory_stats(True)[0]
step()
peak = torch.ops.s2bnn.memory_stats(False)[1] - base
print(json.dumps({'ms': samples[len(samples) // 2], 'peakBytes': peak}))
