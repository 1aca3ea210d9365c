"""Python side of `s2bnn bench-ops`: times the reference formulation of each case (forward +
backward) with PyTorch, the way the public S2-BNN / ReActNet / MoCo code runs it. Memory is read
from the same counting allocator the TypeScript side uses (loaded from libs2bnn_ops.so; the
operators themselves are not used). Reads the cases as JSON on stdin, prints one JSON line each.
Usage: python3 ops_reference.py LIBS2BNN_OPS MIN_TIME_MS THREADS < cases.json
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import s2bnn_bench  # noqa: E402
import s2bnn_reference as ref  # noqa: E402

min_time_ms = s2bnn_bench.setup()
memory_stats = torch.ops.s2bnn.memory_stats


def make_input(spec):
    shape = spec['shape']
    kind = spec['kind']
    if kind == 'weight':
        return (torch.rand(shape) - 0.5) * 2.4
    if kind == 'slope':
        return torch.rand(shape) * 0.5
    if kind == 'unit-rows':
        return torch.nn.functional.normalize(torch.randn(shape), dim=1)
    if kind == 'unit-cols':
        return torch.nn.functional.normalize(torch.randn(shape), dim=0)
    return torch.randn(shape)


def forward(case, xs):
    op, args = case['op'], case.get('args', {})
    if op == 'sign_ste':
        return ref.sign_ste(xs[0])
    if op == 'sign_ste_biased':
        return ref.sign_ste(xs[0] + xs[1])
    if op == 'rprelu':
        return ref.rprelu(*xs)
    if op == 'binarize_weight':
        return ref.binarize_weight(xs[0])
    if op == 'binary_conv2d':
        return ref.binary_conv2d(xs[0], xs[1], args['stride'], args['padding'], True, True)
    if op == 'distribution_loss':
        return ref.distribution_loss(xs[0], xs[1], args['temperature'])
    if op == 'info_nce':
        return ref.info_nce(xs[0], xs[1], xs[2], args['temperature'])[0]
    raise ValueError(op)


def leaves(case, inputs):
    return [x.detach().requires_grad_() if spec['grad'] else x for spec, x in zip(case['inputs'], inputs)]


def step(case, inputs, grad_out):
    y = forward(case, leaves(case, inputs))
    if grad_out is None:
        y.backward()
    else:
        y.backward(grad_out)


for case in json.load(sys.stdin):
    torch.manual_seed(0)
    inputs = [make_input(spec) for spec in case['inputs']]
    scalar = case['op'] in ('distribution_loss', 'info_nce')
    grad_out = None if scalar else torch.randn(forward(case, inputs).shape)
    for _ in range(2):
        step(case, inputs, grad_out)
    ms = s2bnn_bench.median_ms(lambda: step(case, inputs, grad_out), min_time_ms, 5, 200)
    base = memory_stats(True)[0]
    xs = leaves(case, inputs)
    y = forward(case, xs)
    saved = memory_stats(False)[0] - base
    if grad_out is None:
        y.backward()
    else:
        y.backward(grad_out)
    peak = memory_stats(False)[1] - base
    del xs, y
    print(json.dumps({'op': case['op'], 'shape': case['shape'], 'ms': ms,
                      'peakBytes': peak, 'savedBytes': saved}), flush=True)
