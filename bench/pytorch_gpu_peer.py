#!/usr/bin/env python3
"""The PyTorch peer on a GPU: the same model, recipe and modes as the shared CPU peer
(../shared/bench/pytorch_peer.py, whose ResNetCifar this imports), moved to CUDA.

    python3 bench/pytorch_gpu_peer.py --peer PATH/pytorch_peer.py --mode loader|compute --depth 20

loader: torchvision transforms in a DataLoader on the CPU (pinned memory, non-blocking copies),
training on the GPU, as users run it today. compute: one fixed batch already on the GPU, the
model's math alone. Timed with CUDA synchronisation. Last line: images_per_second=<float>
"""
import argparse, importlib.util, time

import numpy as np
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--mode", choices=["loader", "compute"], default="loader")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--images", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("pytorch_peer", a.peer)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = peer.ResNetCifar(a.depth, a.classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(a.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, a.classes, size=a.images)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    if a.mode == "compute":
        x = torch.randn(a.batch, 3, 32, 32, device=device)
        y = torch.randint(0, a.classes, (a.batch,), device=device)
        for _ in range(10):
            step(x, y)
        torch.cuda.synchronize()
        steps = a.images // a.batch
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        n = steps * a.batch
    else:
        import torchvision.transforms as T
        from PIL import Image

        tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                        T.Normalize((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))])

        class DS(torch.utils.data.Dataset):
            def __len__(self):
                return a.images

            def __getitem__(self, i):
                return tf(Image.fromarray(images[i])), int(labels[i])

        dl = torch.utils.data.DataLoader(DS(), batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         drop_last=True, persistent_workers=True, pin_memory=True)
        for x, y in dl:  # warm-up epoch (starts the workers, CUDA kernels)
            step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        n = 0
        for x, y in dl:
            step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            n += x.shape[0]
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    print(f"mode={a.mode} device={torch.cuda.get_device_name()} depth={a.depth} images={n} seconds={dt:.3f}")
    print(f"images_per_second={n / dt:.1f}")


if __name__ == "__main__":
    main()
