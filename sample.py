"""Sample a trained RAW-Diffusion run (the same as `rawdiffusion sample`):

    python sample.py dataset=fivek_nikon general.seed=0          # test metrics, ddim24
    python sample.py dataset=fivek_nikon checkpoint=runs/x/checkpoint.pt save_pred=true
    python sample.py dataset/train=nod_nikon_h416_subsample dataset.train.max_items=100 \
        dataset/val=bdd_h416 save_pred=true rgb_only=true diffusion_val.timestep_respacing=ddim6
    torchrun --nproc_per_node 4 sample.py ...                   # sharded over 4 processes

Rerun the same command to resume. Every setting and what it means: `python sample.py --help`.
"""

from rawdiffusion.hydra_cli import run

if __name__ == "__main__":
    run("sample")
