"""Benchmark of a training step: steps per second and peak memory, per model preset.

One step is what the training loop does per batch (training.py): the RAW-Diffusion loss at
random timesteps (forward through the U-Net with the RGB guide), backward, AdamW. Data are
random tensors, so the figures are the model's cost alone (the loader runs in parallel workers).
Every configuration runs in a fresh process, so that peak memory is its own: the resident set
size (ru_maxrss) on CPU, torch.cuda.max_memory_allocated on GPU.

    python benchmarks/train_speed.py         # paper 256 x 4, small 256 x 4, small 64 x 4 on CPU
    python benchmarks/train_speed.py --config paper:256:4 --steps 5 --device cuda --bf16 \\
        --channels-last
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

DEFAULT_CONFIGS = ("paper:256:4", "small:256:4", "small:64:4")


def measure(preset: str, crop: int, batch: int, steps: int, warmup: int, device: str,
            bf16: bool, channels_last: bool, checkpointing: bool, compile_: bool) -> dict:
    import torch

    from rawdiffusion.allocator import keep_freed_memory
    from rawdiffusion.diffusion import Diffusion
    from rawdiffusion.model import build_model

    keep_freed_memory()  # as the training command does
    torch.manual_seed(0)
    net = build_model(preset).to(device)
    net.checkpointing = checkpointing
    fmt = torch.channels_last if channels_last else torch.preserve_format
    net.to(memory_format=fmt)
    train_net = torch.compile(net) if compile_ else net
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.0)
    diffusion = Diffusion().to(device)
    raw = (torch.rand(batch, 4, crop, crop, device=device) * 2 - 1).to(memory_format=fmt)
    rgb = (torch.rand(batch, 3, crop, crop, device=device) * 2 - 1).to(memory_format=fmt)
    generator = torch.Generator(device).manual_seed(0)
    autocast = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                              enabled=bf16)
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss, _ = diffusion.loss(lambda x_t, t: train_net(x_t, t, rgb=rgb), raw,
                                     generator=generator)
            loss = loss.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"preset": preset, "crop": crop, "batch": batch, "device": device,
            "threads": torch.get_num_threads(), "bf16": bf16, "channels_last": channels_last,
            "checkpointing": checkpointing, "compile": compile_,
            "median_s_per_step": statistics.median(times), "steps_per_s":
            1 / statistics.median(times), "timed_steps": steps, "peak_memory_mib": peak / 2**20,
            "parameters": sum(p.numel() for p in net.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append",
                        help="PRESET:CROP:BATCH, repeatable (default: %s)" % " ".join(
                            DEFAULT_CONFIGS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--compile", action="store_true", help="torch.compile")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one config in this process
    args = parser.parse_args()
    options = dict(steps=args.steps, warmup=args.warmup, device=args.device, bf16=args.bf16,
                   channels_last=args.channels_last, checkpointing=args.checkpointing,
                   compile_=args.compile)
    if args.one:
        preset, crop, batch = args.one.split(":")
        print(json.dumps(measure(preset, int(crop), int(batch), **options)))
        return
    print(f"{'preset':>7} {'crop':>5} {'batch':>5} {'s/step':>8} {'steps/s':>8} "
          f"{'peak MiB':>9}  ({args.device}, median of {args.steps} steps after {args.warmup})")
    forward = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    flags = {"--bf16": args.bf16, "--channels-last": args.channels_last,
             "--checkpointing": args.checkpointing, "--compile": args.compile}
    forward += [flag for flag, on in flags.items() if on]
    for config in args.config or DEFAULT_CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", config, *forward],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"{r['preset']:>7} {r['crop']:>5} {r['batch']:>5} {r['median_s_per_step']:>8.3f} "
              f"{r['steps_per_s']:>8.3f} {r['peak_memory_mib']:>9.0f}  "
              f"threads={r['threads']} params={r['parameters']:,}")


if __name__ == "__main__":
    main()
