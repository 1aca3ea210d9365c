"""Writes parity fixtures as JSON on stdout: random inputs (fixed seed), the reference outputs and
the gradients of sum(output * grad_out). Values are float32 written exactly (repr of a double).
Usage: /usr/bin/python3 test/python/fixtures.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'python'))
import s2bnn_reference as ref  # noqa: E402

torch.manual_seed(1234)


def dump(t):
    return {'shape': list(t.shape), 'values': t.detach().reshape(-1).tolist()}


def case(name, fn, inputs, differentiable, extra=None):
    leaves = {k: v.clone().requires_grad_(k in differentiable) for k, v in inputs.items()}
    out = fn(**leaves)
    loss = out[0] if isinstance(out, tuple) else out
    grad_out = torch.randn_like(loss) if loss.dim() > 0 else torch.tensor(1.7)
    (loss * grad_out).sum().backward()
    record = {
        'name': name,
        'inputs': {k: dump(v) for k, v in inputs.items()},
        'gradOut': dump(grad_out),
        'output': dump(loss),
        'grads': {k: dump(leaves[k].grad) for k in differentiable},
    }
    if isinstance(out, tuple):
        record['logits'] = dump(out[1])
    record.update(extra or {})
    return record


def with_specials(t, specials):
    flat = t.reshape(-1).clone()
    flat[: len(specials)] = torch.tensor(specials, dtype=t.dtype)
    return flat.reshape(t.shape)


specials = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.999, -0.999, 1.001, -1.001]
cases = []

x = with_specials(torch.randn(2, 3, 5, 5) * 1.2, specials)
cases.append(case('sign_ste', lambda x: ref.sign_ste(x), {'x': x}, ['x']))

w = with_specials((torch.rand(6, 4, 3, 3) - 0.5) * 3, specials)
cases.append(case('binarize_weight', lambda w: ref.binarize_weight(w), {'w': w}, ['w']))
w2 = with_specials((torch.rand(5, 7) - 0.5) * 3, specials)
cases.append(case('binarize_weight_2d', lambda w: ref.binarize_weight(w), {'w': w2}, ['w']))

# 7 x 7 inputs; and inputs whose output plane is at most 2 x 2, where the CPU backward runs as
# GEMMs over the im2col matrix instead of oneDNN (native/ops/library.cpp).
for (stride, padding, kernel, cin, cout, size) in [(1, 1, 3, 4, 4, 7), (2, 1, 3, 4, 4, 7), (1, 0, 1, 6, 6, 7),
                                                   (2, 0, 1, 5, 7, 7), (1, 1, 3, 6, 5, 2), (2, 1, 3, 4, 6, 4),
                                                   (2, 1, 3, 5, 4, 3), (1, 1, 3, 4, 4, 1)]:
    for bin_in in (True, False):
        for bin_w in (True, False):
            cx = torch.randn(2, cin, size, size)
            cw = (torch.rand(cout, cin, kernel, kernel) - 0.5) * 2.4
            name = f'binary_conv2d_k{kernel}_s{stride}_p{padding}_in{int(bin_in)}_w{int(bin_w)}'
            name += '' if size == 7 else f'_h{size}'
            cases.append(case(
                name,
                lambda x, w, s=stride, p=padding, bi=bin_in, bw=bin_w: ref.binary_conv2d(x, w, s, p, bi, bw),
                {'x': cx, 'w': cw}, ['x', 'w'],
                {'stride': stride, 'padding': padding, 'binarizeInput': bin_in, 'binarizeWeight': bin_w}))

# The biased forms: sign(x + b) with a per-channel bias, alone and inside the binary conv.
bx = with_specials(torch.randn(2, 4, 5, 5), specials)
bb = torch.tensor([0.0, 0.5, -0.5, 1.0]).reshape(1, 4, 1, 1)
cases.append(case('sign_ste_biased', lambda x, b: ref.sign_ste(x + b), {'x': bx, 'b': bb}, ['x', 'b']))
cases.append(case('binary_conv2d_biased', lambda x, w, b: ref.binary_conv2d(x + b, w, 2, 1, True, True),
                  {'x': bx, 'w': (torch.rand(6, 4, 3, 3) - 0.5) * 2.4, 'b': bb}, ['x', 'w', 'b'],
                  {'stride': 2, 'padding': 1, 'binarizeInput': True, 'binarizeWeight': True}))

rx = torch.randn(3, 5, 4, 6)
cases.append(case('rprelu', lambda x, b1, a, b2: ref.rprelu(x, b1, a, b2),
                  {'x': rx, 'b1': torch.randn(1, 5, 1, 1) * 0.3, 'a': torch.rand(5) * 0.5,
                   'b2': torch.randn(1, 5, 1, 1) * 0.3}, ['x', 'b1', 'a', 'b2']))
cases.append(case('rprelu_2d', lambda x, b1, a, b2: ref.rprelu(x, b1, a, b2),
                  {'x': torch.randn(6, 9), 'b1': torch.randn(9) * 0.3, 'a': torch.rand(9),
                   'b2': torch.randn(9) * 0.3}, ['x', 'b1', 'a', 'b2']))

for scale, label in [(1.0, 'normalized'), (60.0, 'large')]:
    s = F.normalize(torch.randn(16, 128), dim=1) * scale
    t = F.normalize(torch.randn(16, 128), dim=1) * scale
    cases.append(case(f'distribution_loss_{label}', lambda s, t: ref.distribution_loss(s, t, 0.2),
                      {'s': s, 't': t}, ['s'], {'temperature': 0.2}))

q = F.normalize(torch.randn(8, 32), dim=1)
k = F.normalize(torch.randn(8, 32), dim=1)
queue = F.normalize(torch.randn(32, 200), dim=0)
cases.append(case('info_nce', lambda q, k, queue: ref.info_nce(q, k, queue, 0.2),
                  {'q': q, 'k': k, 'queue': queue}, ['q', 'k', 'queue'], {'temperature': 0.2}))

json.dump({'torch': torch.__version__, 'cases': cases}, sys.stdout)
