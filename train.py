"""Train RAW-Diffusion (the same as `rawdiffusion train`):

    python train.py dataset=fivek_nikon general.seed=0
    python train.py dataset=fivek_nikon_subsample dataset.train.max_items=25 general.seed=0
    python train.py dataset=folder dataset.root=data/my_camera model.preset=small
    python train.py dataset=fivek_nikon general.seed=0 "hydra.launcher.partition=P" -m  # SLURM
    torchrun --nproc_per_node 4 train.py dataset=nod_sony                              # DDP

Rerun the same command to resume. Every setting and what it means: `python train.py --help`.
"""

from rawdiffusion.hydra_cli import run

if __name__ == "__main__":
    run("train")
