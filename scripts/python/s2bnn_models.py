"""ReActNet-A in plain PyTorch, written to the official S2-BNN code's module layout (the same
modules in the same order, used or not, so the same state-dict keys and parameter order; see
docs/checkpoints.md), plus torchvision's ResNets with the MoCo MLP head. The parity tests load s2bnn's checkpoints into these and compare outputs and
gradients; the benchmarks time them. Imports nothing from s2bnn.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import s2bnn_reference as ref

STAGE_WIDTHS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


class LearnableBias(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return x + self.bias.expand_as(x)


class BinaryActivation(nn.Module):
    def forward(self, x):
        return ref.sign_ste(x)


class HardBinaryConv(nn.Module):
    def __init__(self, in_chn, out_chn, kernel_size=3, stride=1, padding=1):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.rand((out_chn, in_chn, kernel_size, kernel_size)) * 0.001)

    def forward(self, x):
        return F.conv2d(x, ref.binarize_weight(self.weight), stride=self.stride, padding=self.padding)


def binary_conv(in_chn, out_chn, kernel_size, stride, binarize_weights):
    padding = kernel_size // 2
    if binarize_weights:
        return HardBinaryConv(in_chn, out_chn, kernel_size, stride, padding)
    return nn.Conv2d(in_chn, out_chn, kernel_size, stride, padding, bias=False)


class FirstConv3x3(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, oup, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(oup)

    def forward(self, x):
        return self.bn1(self.conv1(x))


class BasicBlock(nn.Module):
    """A ReActNet block. Like the official S2-BNN code, it registers every module either kind of
    block could use, in one fixed order, and runs only its own: a same-width block its binary_pw /
    bn2, a doubling block the two binary_pw_down convs and bn2_1 / bn2_2. State dicts, parameter
    order (so torch.optim state indices) and checkpoints therefore carry all of them."""

    def __init__(self, inplanes, planes, stride, binarize_weights):
        super().__init__()
        assert planes in (inplanes, 2 * inplanes)
        self.move11 = LearnableBias(inplanes)
        self.binary_3x3 = binary_conv(inplanes, inplanes, 3, stride, binarize_weights)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.move12 = LearnableBias(inplanes)
        self.prelu1 = nn.PReLU(inplanes)
        self.move13 = LearnableBias(inplanes)
        self.move21 = LearnableBias(inplanes)
        self.binary_pw = binary_conv(inplanes, planes, 1, 1, binarize_weights)
        self.bn2 = nn.BatchNorm2d(planes)
        self.move22 = LearnableBias(planes)
        self.prelu2 = nn.PReLU(planes)
        self.move23 = LearnableBias(planes)
        self.binary_pw_down1 = binary_conv(inplanes, inplanes, 1, 1, binarize_weights)
        self.binary_pw_down2 = binary_conv(inplanes, inplanes, 1, 1, binarize_weights)
        self.bn2_1 = nn.BatchNorm2d(inplanes)
        self.bn2_2 = nn.BatchNorm2d(inplanes)
        self.binary_activation = BinaryActivation()
        self.stride = stride
        self.inplanes = inplanes
        self.planes = planes
        if self.inplanes != self.planes:
            # ceil_mode only matters for odd sizes (28 px inputs); ImageNet stages are all even.
            self.pooling = nn.AvgPool2d(2, 2, ceil_mode=True)

    def forward(self, x):
        out1 = self.move11(x)
        out1 = self.binary_activation(out1)
        out1 = self.binary_3x3(out1)
        out1 = self.bn1(out1)
        if self.stride == 2:
            x = self.pooling(x)
        out1 = x + out1
        out1 = self.move12(out1)
        out1 = self.prelu1(out1)
        out1 = self.move13(out1)

        out2 = self.move21(out1)
        out2 = self.binary_activation(out2)
        if self.inplanes == self.planes:
            out2 = self.binary_pw(out2)
            out2 = self.bn2(out2)
            out2 += out1
        else:
            out2_1 = self.bn2_1(self.binary_pw_down1(out2)) + out1
            out2_2 = self.bn2_2(self.binary_pw_down2(out2)) + out1
            out2 = torch.cat([out2_1, out2_2], dim=1)
        out2 = self.move22(out2)
        out2 = self.prelu2(out2)
        out2 = self.move23(out2)
        return out2


def make_head(in_features, head, num_classes, mlp_dim):
    if head == 'linear':
        return nn.Linear(in_features, num_classes)
    return nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, mlp_dim))


class ReActNetA(nn.Module):
    def __init__(self, binarize_weights=True, head='linear', num_classes=1000, mlp_dim=128, in_channels=3,
                 small_stem=False, width=1.0):
        super().__init__()
        widths = [max(1, round(w * width)) for w in STAGE_WIDTHS]
        self.head = head
        self.feature = nn.ModuleList()
        for i in range(len(STAGE_WIDTHS)):
            if i == 0:
                self.feature.append(FirstConv3x3(in_channels, widths[0], 1 if small_stem else 2))
            else:
                stride = 2 if STAGE_WIDTHS[i] != STAGE_WIDTHS[i - 1] and STAGE_WIDTHS[i] != 64 else 1
                self.feature.append(BasicBlock(widths[i - 1], widths[i], stride, binarize_weights))
        self.pool1 = nn.AdaptiveAvgPool2d(1)
        self.fc = make_head(widths[-1], head, num_classes, mlp_dim)

    def forward(self, x):
        for block in self.feature:
            x = block(x)
        x = self.pool1(x).flatten(1)
        x = self.fc(x)
        return F.normalize(x, dim=1) if self.head == 'mlp' else x


class TorchvisionResNet(nn.Module):
    """torchvision's ResNet; with the MLP head its fc is MoCo's Linear-ReLU-Linear."""

    def __init__(self, depth=50, head='linear', num_classes=1000, mlp_dim=128, in_channels=3, small_stem=False):
        super().__init__()
        import torchvision_compat  # noqa: F401  (before torchvision)
        import torchvision
        net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
        if small_stem or in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 3 if small_stem else 7, 1 if small_stem else 2,
                                  1 if small_stem else 3, bias=False)
        if small_stem:
            net.maxpool = nn.Identity()
        net.fc = make_head(net.fc.in_features, head, num_classes, mlp_dim)
        self.net = net
        self.head = head

    def forward(self, x):
        x = self.net(x)
        return F.normalize(x, dim=1) if self.head == 'mlp' else x

    # torchvision's names without the wrapper's "net." prefix.
    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict=True):
        return self.net.load_state_dict(state_dict, strict=strict)


def build(spec):
    """A model from the same spec object the TypeScript builders take."""
    head = spec.get('head', 'linear')
    common = dict(head=head, num_classes=spec.get('numClasses', 1000), mlp_dim=spec.get('mlpDim', 128),
                  in_channels=spec.get('inChannels', 3), small_stem=spec.get('stem', 'imagenet') == 'small')
    if spec['arch'] == 'reactnet-a':
        return ReActNetA(binarize_weights=spec.get('binarize', 'both') == 'both', width=spec.get('width', 1.0),
                         **common)
    return TorchvisionResNet(depth=int(spec['arch'][len('resnet'):]), **common)
