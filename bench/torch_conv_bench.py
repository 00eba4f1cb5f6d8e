# Times the same layer shapes as bench/kernels_bench.c in torch (oneDNN), one thread, GFLOP/s.
# Run: /root/venv-ref/bin/python bench/torch_conv_bench.py
import time
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)

SHAPES = [
    ("800 conv1 7x7s2 3->64", 3, 800, 1088, 64, 7, 2, 3),
    ("800 l1 1x1 64->64", 64, 200, 272, 64, 1, 1, 0),
    ("800 l1 3x3 64->64", 64, 200, 272, 64, 3, 1, 1),
    ("800 l1 1x1 64->256", 64, 200, 272, 256, 1, 1, 0),
    ("800 l1 1x1 256->64", 256, 200, 272, 64, 1, 1, 0),
    ("800 l2 3x3 128 s2", 128, 200, 272, 128, 3, 2, 1),
    ("800 l2 3x3 128->128", 128, 100, 136, 128, 3, 1, 1),
    ("800 l2 1x1 512->128", 512, 100, 136, 128, 1, 1, 0),
    ("800 l3 3x3 256->256", 256, 50, 68, 256, 3, 1, 1),
    ("800 l3 1x1 1024->256", 1024, 50, 68, 256, 1, 1, 0),
    ("800 l4 3x3 512->512", 512, 25, 34, 512, 3, 1, 1),
    ("800 l4 1x1 512->2048", 512, 25, 34, 2048, 1, 1, 0),
    ("800 fpn 3x3 256 P2", 256, 200, 272, 256, 3, 1, 1),
    ("800 fpn 1x1 2048->256", 2048, 25, 34, 256, 1, 1, 0),
    ("416 l1 3x3 64->64", 64, 104, 104, 64, 3, 1, 1),
    ("416 l1 1x1 64->256", 64, 104, 104, 256, 1, 1, 0),
    ("416 l3 3x3 256->256", 256, 26, 26, 256, 3, 1, 1),
    ("416 l4 1x1 512->2048", 512, 13, 13, 2048, 1, 1, 0),
    ("416 fpn 3x3 256 P2", 256, 104, 104, 256, 3, 1, 1),
    ("mask 3x3 256 14x14", 256, 14, 14, 256, 3, 1, 1),
    ("mask x16 3x3 256 14x239", 256, 14, 239, 256, 3, 1, 1),
]


# Thread CPU time (torch runs single-threaded ops on the calling thread): robust on a shared machine.
clock = time.thread_time


def best(fn):
    fn()
    best_t, spent, reps = 1e30, 0.0, 0
    while reps < 3 or (spent < 0.3 and reps < 50):
        t0 = clock()
        fn()
        dt = clock() - t0
        spent += dt
        best_t = min(best_t, dt)
        reps += 1
    return best_t


import sys

if "--net" in sys.argv:
    # Every layer of bench/r50fpn_layers.txt; layers called per RoI (count > 8) run as one batched
    # call, as torch eager does.
    total, gtotal = 0.0, 0.0
    print(f"torch {torch.__version__}, threads 1 (thread CPU time); ms per layer x count")
    with torch.inference_mode():
        for line in open("bench/r50fpn_layers.txt"):
            if line.startswith("#"):
                continue
            kind, a, b, c, d, e, f, g, count = line.split()
            a, b, c, d, e, f, g, count = map(int, (a, b, c, d, e, f, g, count))
            batch = count if count > 8 else 1
            reps = count // batch
            if kind == "conv":
                x = torch.rand(batch, a, b, c) - 0.5
                w = torch.rand(d, a, e, e) - 0.5
                bias = torch.rand(d)
                fn = lambda: F.relu(F.conv2d(x, w, bias, stride=f, padding=g))
                oh, ow = (b + 2 * g - e) // f + 1, (c + 2 * g - e) // f + 1
                flop = 2.0 * d * oh * ow * a * e * e * count
            elif kind == "deconv":
                x = torch.rand(batch, a, b, c) - 0.5
                w = torch.rand(a, d, 2, 2) - 0.5
                bias = torch.rand(d)
                fn = lambda: F.relu(F.conv_transpose2d(x, w, bias, stride=2))
                flop = 2.0 * d * 4 * b * c * a * count
            else:
                x = torch.rand(a, b) - 0.5
                w = torch.rand(c, b) - 0.5
                bias = torch.rand(c)
                fn = lambda: F.relu(F.linear(x, w, bias))
                flop = 2.0 * a * b * c * count
            t = best(fn) * reps
            total += t
            gtotal += flop * 1e-9
            name = f"{kind} {a} {b} {c} {d} k{e} s{f} p{g}"
            print(f"{name:40s} {count:6d} {flop * 1e-9:8.3f} {t * 1e3:12.1f}")
    print(f"{'TOTAL':40s} {'':6s} {gtotal:8.1f} {total * 1e3:12.1f}")
    sys.exit(0)

print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (thread CPU time); GFLOP/s")
with torch.inference_mode():
    for name, cin, h, w, cout, k, s, p in SHAPES:
        x = torch.rand(1, cin, h, w) - 0.5
        wt = torch.rand(cout, cin, k, k) - 0.5
        b = torch.rand(cout)
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        flop = 2.0 * cout * oh * ow * cin * k * k
        t = best(lambda: F.relu(F.conv2d(x, wt, b, stride=s, padding=p)))
        print(f"{name:26s} {flop * 1e-9:8.3f} {flop / t * 1e-9:10.1f}")
    x = torch.rand(1000, 12544) - 0.5
    wt = torch.rand(1024, 12544) - 0.5
    b = torch.rand(1024)
    flop = 2.0 * 1000 * 12544 * 1024
    t = best(lambda: F.relu(F.linear(x, wt, b)))
    print(f"{'fc6 1000x12544x1024':26s} {flop * 1e-9:8.3f} {flop / t * 1e-9:10.1f}")
    x = torch.rand(1, 256, 14, 14) - 0.5
    wt = torch.rand(256, 256, 2, 2) - 0.5
    b = torch.rand(256)
    flop = 2.0 * 256 * 256 * 4 * 196
    t = best(lambda: F.relu(F.conv_transpose2d(x, wt, b, stride=2)))
    print(f"{'deconv 256 14->28':26s} {flop * 1e-9:8.3f} {flop / t * 1e-9:10.1f}")
