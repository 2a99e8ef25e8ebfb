"""`python -m training <family> --profile demo|full --steps N --data FILE --out DIR [options]`.

Trains outside Dagster (a terminal, a cluster job) and ends by printing one JSON line with at
least steps, images_per_s and wall_s. Re-running with the same --out resumes from its
checkpoint. Data-parallel on several processes or GPUs with torchrun (gloo on the CPU, nccl on
GPUs):

    torchrun --standalone --nproc_per_node 2 -m training dcgan --data FILE --out DIR
    python -m training bigan --preset EX4 --feature-weights models/attribute_classifier.pt \\
        --data FILE --out DIR
"""

import argparse
import json
import sys

import torch.distributed

from training.bigan import PRESETS, BiGANConfig, train_bigan
from training.dcgan import VARIANTS, DCGANConfig, train_dcgan
from training.features import FEATURE_NETS


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="family", required=True)
    dc = sub.add_parser("dcgan", help="DCGAN 64x64: baseline, flip augmentation, symmetric")
    bi = sub.add_parser("bigan", help="BiGAN 64x64 with latent reconstruction (EX1-EX9)")
    for p in (dc, bi):
        p.add_argument("--profile", choices=("demo", "full"), default="demo")
        p.add_argument("--steps", type=int)
        p.add_argument("--data", required=True, help="HDF5 image store (images uint8 NxHxWx3)")
        p.add_argument("--out", required=True, help="run folder (checkpoint, samples, losses)")
        p.add_argument("--seed", type=int)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
        p.add_argument("--ngf", type=int)
        p.add_argument("--ndf", type=int)
    dc.add_argument("--variant", choices=VARIANTS, default="symmetric")
    bi.add_argument("--preset", choices=list(PRESETS), default="EX6",
                    help="the paper's experiments: λ1 ∈ {0.05, 1, 2.5} x {-, λ2=1, λ3=1}")
    bi.add_argument("--lambda-ad", type=float, help="λ1 (latent), overrides the preset")
    bi.add_argument("--lambda-ae", type=float, help="λ2 (pixels), overrides the preset")
    bi.add_argument("--lambda-h", type=float, help="λ3 (features), overrides the preset")
    bi.add_argument("--feature-net", choices=FEATURE_NETS, default="classifier")
    bi.add_argument("--feature-weights", default="",
                    help="attribute_classifier.pt, or AlexNet ImageNet weights for alexnet")
    bi.add_argument("--nef", type=int)
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    common = dict(steps=args.steps, seed=args.seed, batch_size=args.batch_size, ngf=args.ngf,
                  ndf=args.ndf, bf16=False if args.fp32 else None)
    if args.family == "dcgan":
        cfg = DCGANConfig.profile(args.profile, variant=args.variant, **common)
        summary = train_dcgan(cfg, args.data, args.out)
    else:
        cfg = BiGANConfig.profile(args.profile, preset=args.preset, lambda_ad=args.lambda_ad,
                                  lambda_ae=args.lambda_ae, lambda_h=args.lambda_h,
                                  feature_net=args.feature_net,
                                  feature_weights=args.feature_weights, nef=args.nef, **common)
        summary = train_bigan(cfg, args.data, args.out)
    if summary["rank"] == 0:  # under torchrun, one line for the whole job
        print(json.dumps(summary), flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary


if __name__ == "__main__":
    sys.exit(main() and 0)
