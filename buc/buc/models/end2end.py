"""``End2End_AvgPooling`` (spec B4): ResNet pool5 per frame, mean over frames, then

* evaluation / clustering feature: ``e = f / ||f||`` (L2-normalised pool5; the embedding is
  not used for it);
* training branch: Linear(d -> embedding, Kaiming fan-out, bias 0) -> BatchNorm1d (1, 0) ->
  L2-normalise -> Dropout. Dropout comes after normalisation, as in the original.

``forward`` takes (batch, frames, 3, H, W) and returns (embedding, e).
"""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F
from torch.nn import init

from .resnet import ResNet


class AvgPooling(nn.Module):
    def __init__(self, input_feature_size: int, embedding_size: int = 2048, dropout: float = 0.5):
        super().__init__()
        self.embedding_size = embedding_size
        self.embedding = nn.Linear(input_feature_size, embedding_size)
        self.embedding_bn = nn.BatchNorm1d(embedding_size)
        init.kaiming_normal_(self.embedding.weight, mode="fan_out")
        init.constant_(self.embedding.bias, 0)
        init.constant_(self.embedding_bn.weight, 1)
        init.constant_(self.embedding_bn.bias, 0)
        self.drop = nn.Dropout(dropout)

    def forward(self, inputs):
        net = inputs.mean(dim=1)                      # average over the frames of a tracklet
        eval_feas = F.normalize(net, p=2, dim=1)
        net = self.embedding_bn(self.embedding(net))
        net = F.normalize(net, p=2, dim=1)
        return self.drop(net), eval_feas


class End2End_AvgPooling(nn.Module):  # noqa: N801  (the original's name)
    def __init__(self, depth: int = 50, pretrained="imagenet", dropout: float = 0.5,
                 embedding_size: int = 2048, fixed_layer: bool = False):
        super().__init__()
        self.CNN = ResNet(depth, pretrained=pretrained, fixed_layer=fixed_layer)
        self.avg_pooling = AvgPooling(self.CNN.out_features, embedding_size, dropout)
        self.fixed_layer = fixed_layer

    def forward(self, x):
        if x.dim() != 5:
            raise ValueError(f"expected (batch, frames, 3, H, W), got shape {tuple(x.shape)}")
        b, s = x.shape[:2]
        feats = self.CNN(x.reshape(b * s, *x.shape[2:]))
        return self.avg_pooling(feats.view(b, s, -1))

    def fixed_bn_names(self) -> list[str]:
        """BatchNorm modules kept in eval mode while training with fixed layers: those whose
        name contains "bn" before layer3 (22 for ResNet-50). The two downsample BNs of
        layer1/layer2 are not among them (their running statistics keep updating), as in the
        original's Trainer."""
        names = []
        for name, _ in self.named_modules():
            if "layer3" in name:
                break
            if "bn" in name:
                names.append(name)
        return names

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.fixed_layer:
            modules = dict(self.named_modules())
            for name in self.fixed_bn_names():
                modules[name].eval()
        return self
