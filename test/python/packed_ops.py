"""torch.ops.s2bnn packed ops inside PyTorch, checked against torch's own conv2d.

Usage: python3 test/python/packed_ops.py LIBRARY -> one JSON object on stdout:
{"cases": n, "mismatches": m, "requires_grad_ok": bool}
"""
import json
import sys

import torch
import torch.nn.functional as F

torch.ops.load_library(sys.argv[1])
s2bnn = torch.ops.s2bnn
torch.manual_seed(0)

cases = mismatches = 0
for C in (1, 31, 64, 100):
    for k, padding in ((1, 0), (3, 1), (3, 0)):
        for stride in (1, 2):
            x = torch.randn(2, C, 9, 8).round()  # exact zeros: they pack as +1
            w = torch.randn(13, C, k, k)
            bias = torch.randn(C) * 0.1
            pm_x = torch.where(x + bias.view(1, C, 1, 1) < 0, -1.0, 1.0)
            pm_w = torch.where(w < 0, -1.0, 1.0)
            want = F.conv2d(pm_x, pm_w, stride=stride, padding=padding)
            got = s2bnn.bconv2d_packed(s2bnn.pack_signs(x.contiguous(memory_format=torch.channels_last), bias),
                                       s2bnn.pack_weights(w), C, stride, padding)
            cases += 1
            if got.dtype != torch.int32 or not torch.equal(got.float(), want) or \
                    not got.is_contiguous(memory_format=torch.channels_last):
                mismatches += 1
            scale, shift = torch.randn(13), torch.randn(13)
            affine = s2bnn.bconv2d_packed(s2bnn.pack_signs(x, bias), s2bnn.pack_weights(w), C, stride, padding,
                                          scale, shift)
            cases += 1
            expected = want * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
            if affine.dtype != torch.float32 or not torch.allclose(affine, expected, rtol=1e-5, atol=1e-5):
                mismatches += 1

x = torch.randn(1, 8, 4, 4, requires_grad=True)
w = torch.randn(4, 8, 3, 3, requires_grad=True)
out = s2bnn.bconv2d_packed(s2bnn.pack_signs(x), s2bnn.pack_weights(w), 8, 1, 1, torch.ones(4, requires_grad=True))
print(json.dumps({
    "cases": cases,
    "mismatches": mismatches,
    "requires_grad_ok": not out.requires_grad,
}))
