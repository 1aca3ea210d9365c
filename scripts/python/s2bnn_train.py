"""The S2-BNN training step written the straightforward PyTorch way (as the reference code does):
the parity baseline of s2bnn's native Trainer (test/train.test.ts) and the Python half of its
step benchmark. Same recipe semantics as native/train/trainer.cpp, including the single-device
shuffle-BN key groups and their per-step permutation seed."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import s2bnn_reference as ref

MASK = (1 << 64) - 1


def mix(x):
    """splitmix64, as native/train/trainer.cpp derives the per-step permutation seed."""
    x = (x + 0x9e3779b97f4a7c15) & MASK
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & MASK
    return x ^ (x >> 31)


class MoCo(nn.Module):
    """MoCo v2's wrapper: encoder_q, its momentum copy encoder_k, and the queue of keys."""

    def __init__(self, make_encoder, dim=128, queue_size=65536):
        super().__init__()
        self.encoder_q = make_encoder()
        self.encoder_k = make_encoder()
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            k.data.copy_(q.data)
            k.requires_grad = False
        self.register_buffer('queue', F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self, m):
        for q, k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            k.data = k.data * m + q.data * (1. - m)

    @torch.no_grad()
    def enqueue(self, keys):
        ptr = int(self.queue_ptr)
        self.queue[:, ptr:ptr + keys.shape[0]] = keys.T
        self.queue_ptr[0] = (ptr + keys.shape[0]) % self.queue.shape[1]


def make_optimizer(params, spec):
    if spec['kind'] == 'adam':
        return torch.optim.Adam(params, lr=spec['lr'], betas=tuple(spec.get('betas', (0.9, 0.999))),
                                eps=spec.get('eps', 1e-8), weight_decay=spec.get('weightDecay', 0))
    return torch.optim.SGD(params, lr=spec['lr'], momentum=spec.get('momentum', 0.9),
                           dampening=spec.get('dampening', 0), weight_decay=spec.get('weightDecay', 0),
                           nesterov=spec.get('nesterov', False))


class Step:
    def __init__(self, recipe, model, teacher, optimizer, temperature=0.2, distill_temperature=0.2,
                 momentum=0.999, key_groups=8, seed=0, contrastive_weight=1.0, distill_weight=1.0,
                 teacher_dtype=torch.float32):
        self.recipe, self.model, self.teacher, self.optimizer = recipe, model, teacher, optimizer
        self.temperature, self.distill_temperature, self.momentum = temperature, distill_temperature, momentum
        self.key_groups, self.seed, self.steps = key_groups, seed, 0
        self.contrastive_weight, self.distill_weight = contrastive_weight, distill_weight
        self.contrastive = recipe in ('contrastive', 'contrastive+distill')
        self.distill = recipe in ('distill', 'contrastive+distill')
        self.student = model.encoder_q if isinstance(model, MoCo) and recipe != 'supervised' else model
        self.teacher_dtype = teacher_dtype
        if teacher is not None:
            teacher.to(teacher_dtype).eval()
            for p in teacher.parameters():
                p.requires_grad = False

    @torch.no_grad()
    def keys(self, x):
        batch = x.shape[0]
        groups = max(1, min(self.key_groups, batch // 2))
        if groups == 1:
            return self.model.encoder_k(x)
        generator = torch.Generator()
        generator.manual_seed(mix(self.seed ^ mix(self.steps)))
        order = torch.randperm(batch, generator=generator)
        shuffled = torch.cat([self.model.encoder_k(c) for c in x[order].tensor_split(groups)])
        out = torch.empty_like(shuffled)
        out[order] = shuffled
        return out

    def __call__(self, views, labels=None, mark=lambda phase: None):
        """One step; `mark(phase)` is called at the end of each phase (the same phases as the
        native Trainer's timePhases: student, keys, teacher, loss, backward, optimizer)."""
        parts = {}
        if self.recipe == 'supervised':
            loss = F.cross_entropy(self.model(views[0]), labels)
            mark('forward')
        else:
            self.model.train()
            q = self.student(views[0])
            mark('student')
            if self.contrastive:
                self.model.momentum_update(self.momentum)
                k = self.keys(views[1])
                mark('keys')
            if self.distill:
                with torch.no_grad():
                    t = self.teacher(views[0].to(self.teacher_dtype)).float()
                mark('teacher')
            loss = 0
            if self.contrastive:
                nce, _ = ref.info_nce(q, k, self.model.queue.clone(), self.temperature)
                parts['contrastive'] = nce.item()
                loss = loss + nce * self.contrastive_weight
            if self.distill:
                d = ref.distribution_loss(q, t, self.distill_temperature)
                parts['distill'] = d.item()
                loss = loss + d * self.distill_weight
        mark('loss')
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mark('backward')
        self.optimizer.step()
        if self.contrastive:
            self.model.enqueue(k)
        mark('optimizer')
        self.steps += 1
        parts['loss'] = loss.item()
        return parts
