"""Checkpoint fixtures and checks for test/checkpoint.test.ts.

  checkpoints.py make DIR            rich.zip.pth, rich.legacy.pth (the same contents in both
                                     torch.save formats) and rich.json (what they hold)
  checkpoints.py compare A B         exit 0 when A and B hold the same values (tensors compared
                                     bit for bit, containers with their Python types)
  checkpoints.py read-safetensors F  parse F by the safetensors spec (no library) and print JSON
  checkpoints.py write-safetensors F write a small safetensors file by the spec
  checkpoints.py malicious F         a torch.save-like zip whose pickle calls os.system
"""
import collections
import io
import json
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch


def rich():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 3, 6)).sum().backward()  # conv output [2, 4, 1, 4]: Linear(4, 2) on the last dim
    optimizer.step()
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        'epoch': 7,
        'arch': 'reactnet-a',
        'best_acc1': np.float64(61.51),
        'lr': 3e-4,
        'huge': 2 ** 80,
        'negative': -(2 ** 40),
        'flags': (True, False, None),
        'names': ['a', 'b'],
        'blob': b'\x00\xffbytes',
        'shape': torch.Size([2, 3]),
        'state_dict': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'views': {'base': base, 'row': base[1], 'column': base[:, 2], 'empty': base[:0]},
        'dtypes': {str(d).split('.')[1]: torch.tensor([1, 0, 3], dtype=d) for d in
                   (torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
                    torch.int8, torch.uint8, torch.bool)},
        'special': torch.tensor([float('nan'), float('inf'), -0.0, 1e-45]),
        'parameter': torch.nn.Parameter(torch.ones(2)),
        'scalar': torch.tensor(3.5),
    }


def describe(value, path='', out=None):
    out = {} if out is None else out
    if isinstance(value, torch.Tensor):
        out[path] = {'dtype': str(value.dtype).split('.')[1], 'shape': list(value.shape)}
    elif isinstance(value, dict):
        for k, v in value.items():
            describe(v, f'{path}.{k}' if path else str(k), out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            describe(v, f'{path}.{i}', out)
    elif isinstance(value, (bytes, bytearray)):
        out[path] = {'bytes': list(value)}
    elif isinstance(value, np.generic):
        out[path] = value.item()
    else:
        out[path] = value if not isinstance(value, int) or abs(value) < 2 ** 53 else str(value)
    return out


def same(a, b, path='root'):
    if type(a) is not type(b) and not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        # numpy scalars come back as Python numbers, and parameters as tensors
        if isinstance(a, np.generic) and a.item() == b:
            return
        raise AssertionError(f'{path}: {type(a).__name__} vs {type(b).__name__}')
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), f'{path}: tensor layout differs'
        assert a.storage_offset() == b.storage_offset(), f'{path}: storage offset differs'
        sa, sb = a.storage(), b.storage()
        ua = torch.tensor([], dtype=a.dtype).set_(sa).view(torch.uint8) if a.dtype != torch.bool else torch.tensor([], dtype=torch.bool).set_(sa).to(torch.uint8)
        ub = torch.tensor([], dtype=b.dtype).set_(sb).view(torch.uint8) if b.dtype != torch.bool else torch.tensor([], dtype=torch.bool).set_(sb).to(torch.uint8)
        assert torch.equal(ua, ub), f'{path}: tensor bytes differ'
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f'{path}: keys differ'
        assert getattr(a, '_metadata', None) == getattr(b, '_metadata', None), f'{path}: _metadata differs'
        for k in a:
            same(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{path}: lengths differ'
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f'{path}.{i}')
    elif isinstance(a, float):
        assert struct.pack('<d', a) == struct.pack('<d', b), f'{path}: {a!r} vs {b!r}'
    else:
        assert a == b, f'{path}: {a!r} vs {b!r}'


def shared_storage(a, b):
    return a.storage().data_ptr() == b.storage().data_ptr()


SAFETENSORS_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
                      'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8,
                      'U8': torch.uint8, 'BOOL': torch.bool}


def main():
    mode = sys.argv[1]
    if mode == 'make':
        directory = sys.argv[2]
        value = rich()
        torch.save(value, f'{directory}/rich.zip.pth')
        torch.save(value, f'{directory}/rich.legacy.pth', _use_new_zipfile_serialization=False)
        with open(f'{directory}/rich.json', 'w') as f:
            json.dump(describe(value), f)
    elif mode == 'compare':
        # weights_only=False: the fixture holds a numpy scalar on purpose (torch >= 2.6 loads
        # weights-only by default, and numpy scalars are not on its list).
        a, b = torch.load(sys.argv[2], weights_only=False), torch.load(sys.argv[3], weights_only=False)
        same(a, b)
        if 'views' in b:  # views of one storage stay views
            assert shared_storage(b['views']['base'], b['views']['row']), 'views no longer share storage'
        print('same')
    elif mode == 'read-safetensors':
        with open(sys.argv[2], 'rb') as f:
            data = f.read()
        (size,) = struct.unpack('<Q', data[:8])
        header = json.loads(data[8:8 + size])
        body = data[8 + size:]
        out = {'__metadata__': header.pop('__metadata__', {})}
        for name, spec in header.items():
            begin, end = spec['data_offsets']
            t = torch.frombuffer(bytearray(body[begin:end]), dtype=SAFETENSORS_DTYPES[spec['dtype']]) if end > begin else torch.tensor([])
            out[name] = {'dtype': spec['dtype'], 'shape': spec['shape'], 'values': t.double().tolist()}
        print(json.dumps(out))
    elif mode == 'write-safetensors':
        tensors = {'weight': torch.arange(6, dtype=torch.float32).reshape(2, 3), 'steps': torch.tensor([5], dtype=torch.int64),
                   'half': torch.tensor([0.5, -2], dtype=torch.float16)}
        header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
        for name, t in tensors.items():
            raw = t.numpy().tobytes()
            code = [k for k, v in SAFETENSORS_DTYPES.items() if v == t.dtype][0]
            header[name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
        text = json.dumps(header).encode()
        with open(sys.argv[2], 'wb') as f:
            f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
    elif mode == 'malicious':
        class Exploit:
            def __reduce__(self):
                import os
                return (os.system, ('touch /tmp/s2bnn-pwned',))
        payload = pickle.dumps({'state_dict': Exploit()}, protocol=2)
        with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_STORED) as z:
            z.writestr('archive/data.pkl', payload)
            z.writestr('archive/version', '3\n')
    else:
        raise SystemExit(f'unknown mode {mode}')


if __name__ == '__main__':
    main()
