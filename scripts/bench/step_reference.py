"""Python side of `s2bnn bench-step`: the straightforward PyTorch pre-training step
(scripts/python/s2bnn_train.py) with the reference models, timed over STEPS steps after one
warm-up, with peak CPU tensor memory from the s2bnn counting allocator (cache limit 0: PyTorch
keeps its own allocation behaviour).
Usage: python3 step_reference.py LIBS2BNN_OPS STEPS THREADS < case.json
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import s2bnn_bench  # noqa: E402
import s2bnn_models  # noqa: E402
import s2bnn_train  # noqa: E402

steps = int(s2bnn_bench.setup())
case = json.load(sys.stdin)
recipe = case['recipe']
torch.manual_seed(0)
contrastive = recipe != 'distill'
if contrastive:
    model = s2bnn_train.MoCo(lambda: s2bnn_models.ReActNetA(head='mlp'), 128, case.get('queueSize', 65536))
    student = model.encoder_q
else:
    model = student = s2bnn_models.ReActNetA(head='mlp')
teacher = None
if recipe != 'contrastive':
    teacher = s2bnn_models.TorchvisionResNet(depth=int(case['teacherArch'][len('resnet'):]), head='mlp')
device = case.get('device', 'cpu')
model.to(device)
if teacher is not None:
    teacher.to(device)
optimizer = torch.optim.Adam(student.parameters(), lr=3e-4)
step = s2bnn_train.Step(recipe, model, teacher, optimizer)
views = [torch.randn(case['batch'], 3, case['size'], case['size'], device=device) for _ in range(2 if contrastive else 1)]
sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)

phase_steps = []


def timed_step():
    # With case['phases']: the end of each phase, as the native Trainer's timePhases marks it.
    marks = [('start', time.perf_counter())]

    def mark(phase):
        sync()
        marks.append((phase, time.perf_counter()))
    step(views, mark=mark if case.get('phases') else (lambda phase: None))
    if case.get('phases'):
        phase_steps.append({name: (t - marks[i][1]) * 1e3 for i, (name, t) in enumerate(marks[1:])})


timed_step()
phase_steps.clear()
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    timed_step()
    sync()
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
phase_ms = None
if phase_steps:
    phase_ms = {name: sorted(s[name] for s in phase_steps)[len(phase_steps) // 2] for name in phase_steps[0]}
base = torch.ops.s2bnn.memory_stats(True)[0]
step(views)
peak = torch.ops.s2bnn.memory_stats(False)[1] - base
result = {'ms': times[len(times) // 2], 'peakBytes': peak}
if phase_ms is not None:
    result['phaseMs'] = phase_ms
print(json.dumps(result))
