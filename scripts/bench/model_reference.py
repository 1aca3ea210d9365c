"""Python side of `s2bnn bench-model`: a training forward + backward of the reference model
(scripts/python/s2bnn_models.py), timed, with peak CPU tensor memory from the s2bnn counting
allocator (installed with a cache limit of 0: PyTorch keeps its own allocation behaviour).
Usage: python3 model_reference.py LIBS2BNN_OPS MIN_TIME_MS THREADS < case.json
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import s2bnn_bench  # noqa: E402
import s2bnn_models  # noqa: E402

min_time_ms = s2bnn_bench.setup()

case = json.load(sys.stdin)
torch.manual_seed(0)
model = s2bnn_models.build(case['spec']).train()
x = torch.randn(case['batch'], case['spec'].get('inChannels', 3), case['size'], case['size'])
grad_out = torch.randn_like(model(x))


def step():
    model(x).backward(grad_out)
    model.zero_grad(set_to_none=True)


step()
ms = s2bnn_bench.median_ms(step, min_time_ms, 3, 50)
base = torch.ops.s2bnn.memory_stats(True)[0]
step()
peak = torch.ops.s2bnn.memory_stats(False)[1] - base
print(json.dumps({'ms': ms, 'peakBytes': peak}))
