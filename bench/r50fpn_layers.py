# Lists every Conv2d / ConvTranspose2d / Linear call of torchvision's maskrcnn_resnet50_fpn on one
# 800x1088 (padded) image, with multiplicities, into bench/r50fpn_layers.txt (read by
# kernels_bench.c with EM_NET=1 and by torch_conv_bench.py --net). Random weights (seed 0) make
# 1000 proposals reach the box head and 100 detections reach the mask head (worst case).
# Run: /root/venv-ref/bin/python bench/r50fpn_layers.py
import collections
import torch
import torchvision

torch.manual_seed(0)
m = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
calls = collections.Counter()


def hook(mod, inp, out):
    x = inp[0]
    if isinstance(mod, torch.nn.Conv2d):
        n, c, h, w = x.shape
        calls[("conv", c, h, w, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0])] += n
    elif isinstance(mod, torch.nn.ConvTranspose2d):
        n, c, h, w = x.shape
        calls[("deconv", c, h, w, mod.out_channels, 2, 2, 0)] += n
    elif isinstance(mod, torch.nn.Linear):
        calls[("linear", x.shape[0], mod.in_features, mod.out_features, 0, 0, 0, 0)] += 1


for mod in m.modules():
    if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
        mod.register_forward_hook(hook)
g = torch.Generator().manual_seed(123)
img = torch.rand(3, 800, 1066, generator=g)
with torch.inference_mode():
    out = m([img])
print("detections:", len(out[0]["boxes"]))
with open("bench/r50fpn_layers.txt", "w") as f:
    f.write("# kind a b c d e f g count (conv: cin h w cout k stride pad; linear: N K M)\n")
    for k, v in calls.items():
        f.write(" ".join(str(t) for t in k) + f" {v}\n")
print(len(calls), "distinct layers")
