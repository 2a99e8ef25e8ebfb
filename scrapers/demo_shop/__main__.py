"""`python -m scrapers.demo_shop --products N --seed S --port P [--truth FILE [--masks]]`."""

import argparse
import signal
import threading
from collections.abc import Callable

from scrapers.demo_shop import DemoShop, write_truth
from scrapers.demo_shop.server import DemoPortError


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else a one-line usage error saying so."""
    allowed = f">= {low}" if high is None else f"in {low}-{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer {allowed}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not {allowed}")
        return value

    parse.__name__ = f"integer {allowed}"
    return parse


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scrapers.demo_shop", description=__doc__)
    ap.add_argument("--products", type=int_in(1), default=200, help="number of products (200)")
    ap.add_argument("--seed", type=int_in(0), default=0, help="the shop's seed (0)")
    ap.add_argument("--port", type=int_in(0, 65535), default=8800,
                    help="port on 127.0.0.1, 0-65535; 0 = any free")
    ap.add_argument("--page-size", type=int_in(1), default=8, help="products per listing page")
    ap.add_argument("--truth", metavar="FILE", help="write the ground truth JSON here")
    ap.add_argument("--masks", action="store_true",
                    help="with --truth: also write 7-class label PNGs to <stem>_masks/")
    ap.add_argument("--no-serve", action="store_true", help="write --truth and exit")
    args = ap.parse_args(argv)
    shop = DemoShop(args.products, args.seed, args.page_size)
    if args.no_serve:
        if not args.truth:
            ap.error("--no-serve needs --truth")
        write_truth(shop, args.truth, masks=args.masks)
        return
    try:
        shop.start(args.port)
    except DemoPortError as e:
        ap.exit(1, f"{ap.prog}: error: {e}\n")
    if args.truth:
        write_truth(shop, args.truth, masks=args.masks)
        print(f"ground truth written to {args.truth}", flush=True)
    print(f"demo shop: {len(shop.products)} products (seed {args.seed}) at {shop.url}/ "
          "- Ctrl-C stops it", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        shop.stop()


if __name__ == "__main__":
    main()
