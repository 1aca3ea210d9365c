"""Loads the s2bnn operator library into PyTorch (torch.ops.load_library) and checks each
operator, with autograd, against the Python reference. Prints one JSON object.
Usage: /usr/bin/python3 test/python/load_library.py build/Release/libs2bnn_ops.so
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'python'))
import s2bnn_reference as ref  # noqa: E402

torch.ops.load_library(sys.argv[1])
s2bnn = torch.ops.s2bnn
torch.manual_seed(0)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def compare(fused_fn, ref_fn, inputs):
    a = [t.clone().requires_grad_() for t in inputs]
    b = [t.clone().requires_grad_() for t in inputs]
    ya, yb = fused_fn(*a), ref_fn(*b)
    g = torch.randn_like(yb)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    errors = [rel(ya.detach(), yb.detach())]
    errors += [rel(x.grad, y.grad) for x, y in zip(a, b) if y.grad is not None]
    return max(errors)


results = {}
x = torch.randn(4, 8, 9, 9)
results['sign_ste'] = compare(s2bnn.sign_ste, ref.sign_ste, [x])
bias = torch.randn(1, 8, 1, 1) * 0.3
results['sign_ste_biased'] = compare(s2bnn.sign_ste_biased, lambda x, b: ref.sign_ste(x + b), [x, bias])
w = (torch.rand(8, 8, 3, 3) - 0.5) * 2.4
results['binarize_weight'] = compare(s2bnn.binarize_weight, ref.binarize_weight, [w])
results['binary_conv2d_biased'] = compare(
    lambda x, w, b: s2bnn.binary_conv2d(x, w, [1, 1], [1, 1], True, True, b),
    lambda x, w, b: ref.binary_conv2d(x + b, w, 1, 1, True, True), [x, w, bias])
results['binary_conv2d'] = compare(
    lambda x, w: s2bnn.binary_conv2d(x, w, [2, 2], [1, 1], True, True),
    lambda x, w: ref.binary_conv2d(x, w, 2, 1, True, True), [x, w])
b1, a, b2 = torch.randn(1, 8, 1, 1), torch.rand(8), torch.randn(1, 8, 1, 1)
results['rprelu'] = compare(s2bnn.rprelu, ref.rprelu, [x, b1, a, b2])
s, t = F.normalize(torch.randn(32, 128), dim=1), F.normalize(torch.randn(32, 128), dim=1)
results['distribution_loss'] = compare(
    lambda s: s2bnn.distribution_loss(s, t, 0.2), lambda s: ref.distribution_loss(s, t, 0.2), [s])
q, k = F.normalize(torch.randn(16, 32), dim=1), F.normalize(torch.randn(16, 32), dim=1)
queue = F.normalize(torch.randn(32, 512), dim=0)
results['info_nce'] = compare(
    lambda q, k, queue: s2bnn.info_nce(q, k, queue, 0.2)[0],
    lambda q, k, queue: ref.info_nce(q, k, queue, 0.2)[0], [q, k, queue])



# The ops also script: TorchScript sees the same schemas.
@torch.jit.script
def scripted_sign(x: torch.Tensor) -> torch.Tensor:
    return torch.ops.s2bnn.sign_ste(x)


results['torchscript_sign_ste'] = rel(scripted_sign(x), torch.sign(x))
print(json.dumps({'torch': torch.__version__, 'maxRelErr': results}))
