"""Baseline for scripts/bench/data.js: torchvision transforms + torch.utils.data.DataLoader making
two augmented views per image, timed over one pass through the data.

Reads a JSON case on stdin:
  {"source": {"kind": "fashion-mnist", "cache": PATH, "images": N}
          | {"kind": "synthetic", "images": N, "height": H, "width": W, "channels": C},
   "recipe": "s2bnnLite" | "mocoV2", "size": S, "batch": B, "workers": W,
   "pipeline": "pil" | "pil-moco" | "tensor"}
and prints {"seconds": ..., "images": ...}.

"pil" is torchvision on PIL images (uint8 after every op), with torchvision's GaussianBlur;
"pil-moco" is the MoCo v2 reference code's pipeline, which blurs with PIL's
ImageFilter.GaussianBlur(radius=sigma) instead (faster, different semantics); "tensor" runs
torchvision's tensor transforms on float images with antialiased resizing, the semantics the
native loader reproduces.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.utils.data

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'python'))
import torchvision_compat  # noqa: E402,F401  (before torchvision)
import torchvision.transforms as T  # noqa: E402
from PIL import Image, ImageFilter

case = json.load(sys.stdin)
source = case['source']
if source['kind'] == 'fashion-mnist':
    with open(source['cache'], 'rb') as f:
        header = f.read(24)
        assert header[:8] == b'S2BNNFM\x01', 'not an s2bnn Fashion-MNIST cache'
        n_train = int.from_bytes(header[8:12], 'little')
        n = min(source['images'], n_train)
        images = np.frombuffer(f.read(n * 784), dtype=np.uint8).reshape(n, 28, 28, 1)
else:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(source['images'], source['height'], source['width'], source['channels']),
                          dtype=np.uint8)

channels = images.shape[3]
if channels == 1:
    mean, std = (0.2860,), (0.3530,)
else:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
size = case['size']
jitter_p, blur_p = (0.6, 0.2) if case['recipe'] == 's2bnnLite' else (0.8, 0.5)
kernel = max(3, 2 * round((0.1 * size - 1) / 2) + 1)
pil = case['pipeline'] in ('pil', 'pil-moco')


class MocoGaussianBlur:
    """moco/loader.py's GaussianBlur."""

    def __call__(self, x):
        sigma = np.random.uniform(0.1, 2.0)
        return x.filter(ImageFilter.GaussianBlur(radius=sigma))


blur = MocoGaussianBlur() if case['pipeline'] == 'pil-moco' else T.GaussianBlur(kernel, sigma=(0.1, 2.0))
ops = [T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
       T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=jitter_p),
       T.RandomGrayscale(p=0.2),
       T.RandomApply([blur], p=blur_p),
       T.RandomHorizontalFlip()]
if pil:
    transform = T.Compose(ops + [T.ToTensor(), T.Normalize(mean, std)])
else:
    transform = T.Compose([T.ConvertImageDtype(torch.float32)] + ops + [T.Normalize(mean, std)])


class TwoViews(torch.utils.data.Dataset):
    def __len__(self):
        return len(images)

    def __getitem__(self, i):
        if pil:
            img = Image.fromarray(images[i][:, :, 0] if channels == 1 else images[i])
        else:
            img = torch.from_numpy(images[i]).permute(2, 0, 1)
        return transform(img), transform(img), i


loader = torch.utils.data.DataLoader(TwoViews(), batch_size=case['batch'], shuffle=True,
                                     num_workers=case['workers'], drop_last=False)
start = time.perf_counter()
count = 0
for q, k, index in loader:
    count += q.shape[0]
seconds = time.perf_counter() - start
print(json.dumps({'seconds': seconds, 'images': count}))
