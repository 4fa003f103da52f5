"""The CIFAR ResNet of the PyTorch peers (pytorch_loop.py, lt_peer.py), written as the long-tail
literature's code writes it (LDAM-DRW's resnet_cifar) and initialised as ltsweep initialises its
own (worker/src/cifar_resnet.rs):

- depth 6n+2: a 3x3 convolution to 16 channels, three stages of n basic blocks with 16, 32 and
  64 channels (the first block of stages 2 and 3 with stride 2), global average pooling;
- option-A shortcuts: stride-2 subsampling and zero-padded channels, no parameters;
- Kaiming-normal (fan-in, gain sqrt(2)) convolution and linear weights, PyTorch's linear bias
  (uniform in +-1/sqrt(fan-in)), BatchNorm scale 1 and shift 0 (PyTorch's defaults);
- with `cosine_scale` s (LDAM-DRW), the cosine classifier of Cao et al.'s code (NormedLinear:
  Uniform(-1, 1) columns, only their direction used) giving s * cos(feature, column), the logits
  ltsweep's LDAM takes; otherwise a linear classifier.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = (c_out - c_in) // 2 if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            shortcut = x
        else:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class NormedLinear(nn.Module):
    """s * cos(x, w_k) for each class k: unit-norm features against unit-norm columns."""

    def __init__(self, d, k, scale):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, k))
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
        self.scale = scale

    def forward(self, x):
        return self.scale * F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class ResNet(nn.Module):
    def __init__(self, depth, channels, classes, cosine_scale=None):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth {depth}: a CIFAR ResNet's depth is 6n+2 with n >= 1")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, c_in = [], 16
        for stage, c_out in enumerate([16, 32, 64]):
            for i in range(n):
                blocks.append(Block(c_in, c_out, 2 if i == 0 and stage > 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = NormedLinear(64, classes, cosine_scale) if cosine_scale else nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.blocks(out)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
