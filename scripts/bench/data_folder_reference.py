"""Baseline for scripts/bench/data_folder.js: torchvision.datasets.ImageFolder (PIL decode) +
torchvision transforms + torch.utils.data.DataLoader, timed in steady state.

Reads a JSON case on stdin:
  {"root": DIR, "mode": "pretrain" | "eval" | "decode", "recipe": "s2bnnLite" | "mocoV2",
   "size": S, "batch": B, "workers": W, "seconds": T}
and prints {"images": N, "seconds": T, "cpuSeconds": C, "peakRssMiB": main + W x the largest
worker's}, C being the CPU time (user + system) of the main process and its workers while timed.

"pretrain": two views per image of PIL-image torchvision transforms (RandomResizedCrop, ColorJitter
with p, RandomGrayscale, GaussianBlur with p, flip, ToTensor, Normalize; the loader's recipe);
"eval": Resize(S * 8 / 7) + CenterCrop(S) + ToTensor + Normalize; "decode": PIL's open +
convert('RGB') only (torchvision's default loader). Timing starts after the first batch.
"""
import json
import os
import resource
import sys
import time

import torch
import torch.utils.data

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import torchvision_compat  # noqa: E402,F401  (before torchvision)
import torchvision.datasets  # noqa: E402
import torchvision.transforms as T

case = json.load(sys.stdin)
size = case['size']
mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
jitter_p, blur_p = (0.6, 0.2) if case.get('recipe', 's2bnnLite') == 's2bnnLite' else (0.8, 0.5)
kernel = max(3, 2 * round((0.1 * size - 1) / 2) + 1)
mode = case['mode']

if mode == 'pretrain':
    one = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)),
                     T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=jitter_p),
                     T.RandomGrayscale(p=0.2),
                     T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p),
                     T.RandomHorizontalFlip(),
                     T.ToTensor(), T.Normalize(mean, std)])
    transform = lambda img: (one(img), one(img))
elif mode == 'eval':
    transform = T.Compose([T.Resize(round(size * 8 / 7)), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
else:
    transform = lambda img: img.size[0]

dataset = torchvision.datasets.ImageFolder(case['root'], transform=transform)
loader = torch.utils.data.DataLoader(dataset, batch_size=case['batch'], shuffle=True, num_workers=case['workers'],
                                     drop_last=True, persistent_workers=case['workers'] > 0)
def cpu_seconds():
    """CPU time (user + system) of this process and the loader's live workers."""
    total = sum(os.times()[:2])
    iterator = getattr(loader, '_iterator', None)
    for worker in getattr(iterator, '_workers', []):
        with open(f'/proc/{worker.pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return total


measured_from = None
cpu_from = 0.0
images = 0
done = False
while not done:
    for batch, _ in loader:
        if measured_from is None:
            measured_from = time.perf_counter()
            cpu_from = cpu_seconds()
            continue
        images += case['batch']
        if time.perf_counter() - measured_from >= case['seconds']:
            done = True
            break
seconds = time.perf_counter() - measured_from
cpu = cpu_seconds() - cpu_from
iterator = getattr(loader, '_iterator', None)
if iterator is not None and hasattr(iterator, '_shutdown_workers'):
    iterator._shutdown_workers()  # joined workers count in RUSAGE_CHILDREN
main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({'images': images, 'seconds': seconds, 'cpuSeconds': cpu, 'peakRssMiB': main + case['workers'] * worker}))
