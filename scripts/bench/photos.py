#!/usr/bin/env python3
"""Writes an ImageFolder tree of photo-like JPEGs (deterministic; for tests and benchmarks).

  photos.py OUT --classes C --per-class N [--width W --height H] [--quality Q] [--seed S] [--mixed]

Each image is natural-image-like rather than flat: smooth noise at several scales with a 1/f
amplitude falloff (per channel, correlated through a random color mix), plus a few hard edges
(random half-planes and discs with their own colors and texture) and fine grain, so JPEG sizes
and decode costs resemble photographs (about 100 KB at 500 x 375, quality 90). Sizes vary
around W x H (both orientations) as ImageNet's do. --mixed also writes, in rotation, grayscale,
progressive, 4:4:4, CMYK and PNG files.
Needs numpy and PIL (Debian: python3-numpy, python3-pil).
"""
import argparse
import os

import numpy as np
from PIL import Image


def smooth_noise(rng, h, w, cell):
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    # Bilinear upsampling of the coarse grid.
    ys = np.arange(h, dtype=np.float32) / cell
    xs = np.arange(w, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def picture(rng, h, w):
    channels = []
    for _ in range(3):
        total = np.zeros((h, w), np.float32)
        for cell in (96, 48, 24, 12, 6, 3, 2):
            total += smooth_noise(rng, h, w, cell) * (cell / 96.0) ** 0.3
        channels.append(total)
    mix = rng.uniform(0.2, 1.0, (3, 3)).astype(np.float32)
    img = np.einsum('ij,jhw->hwi', mix, np.stack(channels)) * 22 + rng.uniform(70, 170, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(3, 7))):
        if rng.random() < 0.5:
            angle = rng.uniform(0, np.pi)
            offset = rng.uniform(-0.5, 0.5) * (h + w) / 2
            mask = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle) > offset
        else:
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.05, 0.3) * min(h, w)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        color = rng.uniform(-60, 60, 3).astype(np.float32)
        texture = smooth_noise(rng, h, w, 4)[..., None] * rng.uniform(4, 14)
        img = np.where(mask[..., None], img + color + texture, img)
    img += rng.standard_normal((h, w, 3)).astype(np.float32) * 9.0
    return np.clip(img, 0, 255).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('out')
    parser.add_argument('--classes', type=int, default=10)
    parser.add_argument('--per-class', type=int, default=10)
    parser.add_argument('--width', type=int, default=500)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--quality', type=int, default=90)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--mixed', action='store_true')
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    count = 0
    for c in range(args.classes):
        folder = os.path.join(args.out, f'n{c:08d}')
        os.makedirs(folder, exist_ok=True)
        for i in range(args.per_class):
            w = int(args.width * rng.uniform(0.8, 1.2))
            h = int(args.height * rng.uniform(0.8, 1.2))
            if rng.random() < 0.25:
                w, h = h, w
            image = Image.fromarray(picture(rng, h, w))
            name = os.path.join(folder, f'{c}_{i:05d}')
            kind = count % 6 if args.mixed else 0
            if kind == 1:
                image.convert('L').save(name + '.jpg', quality=args.quality)
            elif kind == 2:
                image.save(name + '.jpg', quality=args.quality, progressive=True)
            elif kind == 3:
                image.save(name + '.jpg', quality=args.quality, subsampling=0)
            elif kind == 4:
                image.convert('CMYK').save(name + '.jpg', quality=args.quality)
            elif kind == 5:
                image.save(name + '.png')
            else:
                image.save(name + '.jpg', quality=args.quality)
            count += 1
    print(count)


if __name__ == '__main__':
    main()
