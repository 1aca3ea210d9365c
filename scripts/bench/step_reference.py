"""Python side of `s2bnn bench-step`: the straightforward PyTorch pre-training step
(scripts/python/s2bnn_train.py) with the reference models, run one step at a time on request so
that the caller can interleave it with its own steps (a machine whose speed drifts then slows
both sides alike). Peak CPU tensor memory comes from the s2bnn counting allocator (cache limit 0:
PyTorch keeps its own allocation behaviour).
Usage: python3 step_reference.py LIBS2BNN_OPS 0 THREADS
stdin: the case as one JSON line, then one command per line; each answer is one JSON line:
  (after the case)  {"ready": true}            models built, one warm-up step done
  step              {"ms": M, "phaseMs": {...}}  one timed step (phaseMs with case['phases'])
  peak              {"peakBytes": B}           peak tensor memory of one more step
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

s2bnn_bench.setup()
case = json.loads(sys.stdin.readline())
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
teacher_dtype = torch.bfloat16 if case.get('teacherPrecision') == 'bfloat16' else torch.float32
step = s2bnn_train.Step(recipe, model, teacher, optimizer, teacher_dtype=teacher_dtype)
views = [torch.randn(case['batch'], 3, case['size'], case['size'], device=device) for _ in range(2 if contrastive else 1)]
sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)


def answer(value):
    sys.stdout.write(json.dumps(value) + '\n')
    sys.stdout.flush()


def timed_step():
    # With case['phases']: the end of each phase, as the native Trainer's timePhases marks it.
    marks = [('start', time.perf_counter())]

    def mark(phase):
        sync()
        marks.append((phase, time.perf_counter()))
    step(views, mark=mark if case.get('phases') else (lambda phase: None))
    sync()
    result = {'ms': (time.perf_counter() - marks[0][1]) * 1e3}
    if case.get('phases'):
        result['phaseMs'] = {name: (t - marks[i][1]) * 1e3 for i, (name, t) in enumerate(marks[1:])}
    return result


timed_step()
answer({'ready': True})
for line in sys.stdin:
    command = line.strip()
    if command == 'step':
        answer(timed_step())
    elif command == 'peak':
        base = torch.ops.s2bnn.memory_stats(True)[0]
        step(views)
        answer({'peakBytes': torch.ops.s2bnn.memory_stats(False)[1] - base})
    else:
        raise SystemExit(f'step_reference.py: unknown command {command!r} (expected step or peak)')
