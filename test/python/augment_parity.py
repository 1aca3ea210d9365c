"""torchvision 0.14 reference for test/data.test.ts.

Reads {"cases": [...]} as JSON on stdin and prints one result per case:
- image ops: the op applied by torchvision.transforms.functional to the image as a float CHW
  tensor in [0, 1] (ToTensor's conversion), with the given fixed parameters;
- "rrcSamples": RandomResizedCrop.get_params drawn `count` times (torch.manual_seed(seed)).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'python'))
import torchvision_compat  # noqa: E402,F401  (before torchvision)
import torchvision.transforms as T  # noqa: E402
import torchvision.transforms.functional as F  # noqa: E402


def image_of(case):
    h, w, c = case['image']['shape']
    img = torch.tensor(case['image']['values'], dtype=torch.uint8).reshape(h, w, c)
    return img.permute(2, 0, 1).float() / 255


def grayscale(x):
    return F.rgb_to_grayscale(x, num_output_channels=3) if x.shape[0] == 3 else x.clone()


JITTER = {
    0: ('brightness', 1.0, F.adjust_brightness),
    1: ('contrast', 1.0, F.adjust_contrast),
    2: ('saturation', 1.0, F.adjust_saturation),
    3: ('hue', 0.0, F.adjust_hue),
}


def augment(x, options, params):
    size = options['size']
    top, left, h, w = params['crop']
    x = F.resized_crop(x, top, left, h, w, [size, size], antialias=True)
    if params.get('jitter'):
        for op in params['order']:
            name, identity, fn = JITTER[op]
            if params[name] != identity:
                x = fn(x, params[name])
    if params.get('grayscale'):
        x = grayscale(x)
    if params.get('blur'):
        k = options['blur']['kernelSize']
        x = F.gaussian_blur(x, [k, k], [params['sigma'], params['sigma']])
    # MoCo v2 flips last; the native pipeline flips inside the resize (every op in between is
    # mirror-symmetric), so this also checks that they commute.
    if params.get('flip'):
        x = F.hflip(x)
    return F.normalize(x, options['mean'], options['std'])


def run(case):
    op = case['op']
    if op == 'rrcSamples':
        torch.manual_seed(case['seed'])
        img = torch.zeros(1, case['height'], case['width'])
        out = [T.RandomResizedCrop.get_params(img, case['scale'], case['ratio']) for _ in range(case['count'])]
        return {'crops': [list(map(int, c)) for c in out]}
    x = image_of(case)
    if op == 'toFloat':
        y = x
    elif op == 'resample':
        top, left, h, w = case.get('box', [0, 0, x.shape[1], x.shape[2]])
        th, tw = case['size']
        y = F.resized_crop(x, top, left, h, w, [th, tw], antialias=True)
        wt, wl, wh, ww = case.get('window', [0, 0, th, tw])
        y = y[:, wt:wt + wh, wl:wl + ww]
        if case.get('flip'):
            y = F.hflip(y)
    elif op in ('brightness', 'contrast', 'saturation', 'hue'):
        y = getattr(F, 'adjust_' + op)(x, case['factor'])
    elif op == 'grayscale':
        y = grayscale(x)
    elif op == 'blur':
        k = case['kernelSize']
        y = F.gaussian_blur(x, [k, k], [case['sigma'], case['sigma']])
    elif op == 'normalize':
        y = F.normalize(x, case['mean'], case['std'])
    elif op == 'augment':
        y = augment(x, case['options'], case['params'])
    elif op == 'eval':
        t = case['transform']
        y = F.center_crop(F.resize(x, t['resize'], antialias=True), t['crop'])
        y = F.normalize(y, t['mean'], t['std'])
    else:
        raise ValueError('unknown op ' + op)
    y = y.contiguous()
    return {'shape': list(y.shape), 'values': y.flatten().tolist()}


cases = json.load(sys.stdin)['cases']
print(json.dumps([run(c) for c in cases]))
