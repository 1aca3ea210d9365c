"""Imports torchvision for the reference scripts under any torch build they run with.

The torchvision wheels that go with pip's torch 2.13 are built against its CUDA build: under the
CPU build their compiled operators (nms, roi_align, ...) do not load, and `import torchvision`
then fails while registering fake kernels for them. The references use only torchvision's models
and transforms, which are Python: this import skips the registrations that fail and nothing else.
Import this module before torchvision.
"""
import torch.library

_register_fake = getattr(torch.library, 'register_fake', None)  # torch 2.4+


def _tolerant_register_fake(op, *args, **kwargs):
    if not (isinstance(op, str) and op.startswith('torchvision::')):
        return _register_fake(op, *args, **kwargs)
    try:
        register = _register_fake(op, *args, **kwargs)
    except RuntimeError:  # "operator torchvision::nms does not exist": its library did not load
        return lambda function: function
    if not callable(register):
        return register

    def apply(function):
        try:
            return register(function)
        except RuntimeError:
            return function

    return apply


if _register_fake is not None:
    torch.library.register_fake = _tolerant_register_fake
    try:
        import torchvision  # noqa: F401
    finally:
        torch.library.register_fake = _register_fake
