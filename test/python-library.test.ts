// native/ops is its own shared library that PyTorch users load with torch.ops.load_library and
// call as torch.ops.s2bnn.* with autograd.
import * as fs from 'fs';

import { opsLibraryPath } from '../lib';
import { pythonWithTorch, runPython } from './helpers';

const { python, reason } = pythonWithTorch();

(python ? describe : describe.skip)(`torch.ops.load_library${python ? '' : ` (skipped: ${reason})`}`, () => {
  test('every operator matches the Python reference inside PyTorch, with autograd', () => {
    expect(fs.existsSync(opsLibraryPath())).toBe(true);
    const out = JSON.parse(runPython(python!, ['test/python/load_library.py', opsLibraryPath()]));
    const errors = out.maxRelErr as Record<string, number>;
    expect(Object.keys(errors).sort()).toEqual(
      ['binarize_weight', 'binary_conv2d', 'binary_conv2d_biased', 'distribution_loss', 'info_nce', 'rprelu', 'sign_ste',
        'sign_ste_biased', 'torchscript_sign_ste'].sort(),
    );
    for (const [op, err] of Object.entries(errors)) {
      expect([op, err <= 1e-5]).toEqual([op, true]);
    }
  });
});
