"""`python -m training <family> --profile demo|full --steps N --data FILE --out DIR [options]`.

Trains outside Dagster (a terminal, a cluster job) and ends by printing one JSON line with at
least steps, images_per_s and wall_s. Re-running with the same --out resumes from its
checkpoint. Data-parallel on several processes or GPUs with torchrun (DDP; gloo on the CPU,
nccl on GPUs):

    torchrun --standalone --nproc_per_node 2 -m training dcgan --data FILE --out DIR
"""

import argparse
import json
import sys

import torch.distributed

from training.dcgan import VARIANTS, DCGANConfig, train_dcgan


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="family", required=True)
    dc = sub.add_parser("dcgan", help="DCGAN 64x64: baseline, flip augmentation, symmetric")
    for p in (dc,):
        p.add_argument("--profile", choices=("demo", "full"), default="demo")
        p.add_argument("--steps", type=int)
        p.add_argument("--data", required=True, help="HDF5 image store (images uint8 NxHxWx3)")
        p.add_argument("--out", required=True, help="run folder (checkpoint, samples, losses)")
        p.add_argument("--seed", type=int)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    dc.add_argument("--variant", choices=VARIANTS, default="symmetric")
    dc.add_argument("--ngf", type=int)
    dc.add_argument("--ndf", type=int)
    args = ap.parse_args(argv)
    cfg = DCGANConfig.profile(args.profile, variant=args.variant, steps=args.steps,
                              seed=args.seed, batch_size=args.batch_size, ngf=args.ngf,
                              ndf=args.ndf, bf16=False if args.fp32 else None)
    summary = train_dcgan(cfg, args.data, args.out)
    if summary["rank"] == 0:  # under torchrun, one line for the whole job
        print(json.dumps(summary), flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary


if __name__ == "__main__":
    sys.exit(main() and 0)
