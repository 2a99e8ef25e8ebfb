"""`python -m training <family> --data FILE --out DIR [--profile demo|full --steps N ...]`.

Trains any registered family outside Dagster (a terminal, a cluster job) and ends by printing
one JSON line with at least steps, images_per_s and wall_s; a progress bar goes to stderr.
Re-running with the same --out resumes from its checkpoint (a run whose options differ from the
checkpoint's is refused, naming the fields). `python -m training --list` lists the families;
`python -m training <family> --help` lists its options. Data-parallel with torchrun (gloo on the
CPU, nccl on GPUs):

    torchrun --standalone --nproc_per_node 2 -m training dcgan --data FILE --out DIR
    python -m training bigan --preset EX4 --feature-weights models/attribute_classifier.pt \\
        --data FILE --out DIR
"""

import json

import torch.distributed


def main(argv: list[str] | None = None) -> dict:
    from training.cli import Progress, config_from_args, family_lines, parser
    from training.family import get_family
    from training.launch import die_with_torchrun
    from training.loop import train

    ap = parser()
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(family_lines()))
        return {}
    if not args.family:
        ap.error("name a family (python -m training --list)")
    family = get_family(args.family)
    die_with_torchrun()  # a worker never outlives its torchrun, even a SIGKILLed one
    try:
        cfg = config_from_args(family, args)
        progress = None if args.no_progress else Progress(cfg.steps)
        summary = train(family, cfg, args.data, args.out, progress=progress)
    except ValueError as e:  # bad input: one line, before any training
        ap.exit(2, f"python -m training {args.family}: error: {e}\n")
    if summary["rank"] == 0:  # under torchrun, one line for the whole job
        print(json.dumps(summary), flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return summary


if __name__ == "__main__":
    main()
