"""The S2-BNN operators written from docs/method.md as plain PyTorch, the way the public reference
implementations (ReActNet, S2-BNN, MoCo v2) write them. Used as the parity oracle of the tests and
as the Python baseline of the benchmarks; imports nothing from s2bnn.
"""
import torch
import torch.nn.functional as F


def sign_ste(x):
    """ReActNet's BinaryActivation: sign forward, ApproxSign derivative backward."""
    out_forward = torch.sign(x)
    mask1 = x < -1
    mask2 = x < 0
    mask3 = x < 1
    out1 = (-1) * mask1.type(x.dtype) + (x * x + 2 * x) * (1 - mask1.type(x.dtype))
    out2 = out1 * mask2.type(x.dtype) + (-x * x + 2 * x) * (1 - mask2.type(x.dtype))
    out3 = out2 * mask3.type(x.dtype) + 1 * (1 - mask3.type(x.dtype))
    return out_forward.detach() - out3.detach() + out3


def binarize_weight(w):
    """ReActNet's HardBinaryConv weight: alpha * sign(w) forward, clipped STE backward."""
    dims = tuple(range(1, w.dim()))
    scaling_factor = torch.mean(w.abs(), dim=dims, keepdim=True) if dims else w.abs()
    scaling_factor = scaling_factor.detach()
    binary_no_grad = scaling_factor * torch.sign(w)
    clipped = torch.clamp(w, -1.0, 1.0)
    return binary_no_grad.detach() - clipped.detach() + clipped


def binary_conv2d(x, w, stride, padding, binarize_input, binarize_w):
    inp = sign_ste(x) if binarize_input else x
    weight = binarize_weight(w) if binarize_w else w
    return F.conv2d(inp, weight, stride=stride, padding=padding)


def rprelu(x, bias_in, weight, bias_out):
    """LearnableBias -> PReLU -> LearnableBias."""
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    return F.prelu(x + bias_in.reshape(shape), weight.reshape(-1)) + bias_out.reshape(shape)


def distribution_loss(student, teacher, temperature):
    """Guided distribution calibration: the teacher's softmax as the target of the student's."""
    target = F.softmax(teacher.detach() / temperature, dim=1)
    return -(target * F.log_softmax(student / temperature, dim=1)).sum(dim=1).mean()


def info_nce(q, k, queue, temperature):
    """MoCo v2's logits and loss: positive at index 0, queue is [dim, K]."""
    l_pos = torch.einsum('nc,nc->n', [q, k]).unsqueeze(-1)
    l_neg = torch.einsum('nc,ck->nk', [q, queue])
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels), logits.detach()
